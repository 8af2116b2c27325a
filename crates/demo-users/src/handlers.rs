//! The HTTP handlers: parse and validate input, call storage (whichever database it is), answer
//! JSON.

use demo_kit::input::{JsonObject, Page, parse_id};
use demo_kit::{AppError, RawQuery, idempotency, response};
use http::StatusCode;
use rustapi_rs::{Body, Headers, Path, State};

use crate::AppState;
use crate::storage::{self, NewUser};

type Result<T, E = AppError> = std::result::Result<T, E>;
type Response = rustapi_rs::Response;

/// Longest accepted name, in characters.
const MAX_NAME: usize = 200;
/// Longest accepted email (RFC 5321 path limit).
const MAX_EMAIL: usize = 254;

/// Reads and checks `name` and `email`.
fn new_user(body: &JsonObject) -> Result<NewUser> {
    let name = body.required_str("name", MAX_NAME)?;
    let email = body.required_str("email", MAX_EMAIL)?;
    if !is_plausible_email(&email) {
        return Err(AppError::invalid_field(
            "email",
            "must be an email address like name@example.com",
        ));
    }
    Ok(NewUser { name, email })
}

/// One `@` with something before it and a dotted domain after it, no spaces. Deliberately
/// loose: the only real check of an address is mailing it.
fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// `GET /users?limit=&offset=`.
pub(crate) async fn list(State(state): State<AppState>, query: RawQuery) -> Result<Response> {
    let page = Page::from_query(&query)?;
    let users = storage::list(&state.db, page).await?;
    Ok(response::json(StatusCode::OK, &users))
}

/// `GET /users/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let user = storage::get(&state.db, id).await?;
    Ok(response::json(StatusCode::OK, &user))
}

/// `POST /users`, honouring `Idempotency-Key`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Headers(headers): Headers,
    Body(body): Body,
) -> Result<Response> {
    let key = idempotency::key_from_headers(&headers)?;
    let body = JsonObject::parse(&body)?;
    let user = new_user(&body)?;
    let fingerprint = format!("POST /users {}", body.canonical());
    let idempotency = key.map(|key| (key, fingerprint));
    let created = storage::create(&state.db, user, idempotency).await?;
    Ok(created.into_response())
}

/// `PUT /users/{id}`: replaces name and email.
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let user = new_user(&JsonObject::parse(&body)?)?;
    let updated = storage::update(&state.db, id, user).await?;
    Ok(response::json(StatusCode::OK, &updated))
}

/// `DELETE /users/{id}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    storage::delete(&state.db, id).await?;
    Ok(response::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_plausibility() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(is_plausible_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a@@b.co", "a b@c.de", "a@.co", "a@b.co.",
        ] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }
}
