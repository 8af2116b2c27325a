//! The HTTP handlers: parse and validate input, call storage (whichever database it is), answer
//! JSON.

use demo_kit::input::{JsonObject, Page, int_value, parse_id, query_int, str_value};
use demo_kit::{AppError, RawQuery, idempotency, response};
use http::StatusCode;
use rustapi_rs::{Body, Headers, Path, State};
use serde_json::Value;

use crate::AppState;
use crate::storage::{self, Item, NewOrder, STATUSES};

type Result<T, E = AppError> = std::result::Result<T, E>;
type Response = rustapi_rs::Response;

/// Most items in one order.
const MAX_ITEMS: usize = 100;
/// Longest item name, in characters.
const MAX_ITEM_NAME: usize = 200;
/// Largest quantity of one item.
const MAX_QUANTITY: i64 = 1_000_000;
/// Largest unit price: ten million (in cents: one billion).
const MAX_UNIT_PRICE_CENTS: i64 = 1_000_000_000;

/// Reads and checks an order body; errors name the field, e.g. `items[2].quantity`.
fn new_order(body: &JsonObject) -> Result<NewOrder> {
    let user_id = body.required_int("user_id", 1, i64::MAX)?;
    let raw_items = body.required_array("items")?;
    if raw_items.is_empty() {
        return Err(AppError::invalid_field("items", "must not be empty"));
    }
    if raw_items.len() > MAX_ITEMS {
        return Err(AppError::invalid_field(
            "items",
            format!("must have at most {MAX_ITEMS} entries"),
        ));
    }
    let items = raw_items
        .iter()
        .enumerate()
        .map(|(i, raw)| item(i, raw))
        .collect::<Result<Vec<_>>>()?;
    let status = match body.get("status") {
        None => "pending".to_owned(),
        Some(value) => {
            let status = str_value("status", value, 20)?;
            if !STATUSES.contains(&status.as_str()) {
                return Err(AppError::invalid_field(
                    "status",
                    format!("must be one of {}", STATUSES.join(", ")),
                ));
            }
            status
        }
    };
    Ok(NewOrder {
        user_id,
        items,
        status,
    })
}

fn item(index: usize, raw: &Value) -> Result<Item> {
    let field = |name: &str| format!("items[{index}].{name}");
    let Value::Object(obj) = raw else {
        return Err(AppError::invalid_field(
            format!("items[{index}]"),
            "must be an object",
        ));
    };
    let get = |name: &str| {
        obj.get(name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| AppError::invalid_field(field(name), "is required"))
    };
    Ok(Item {
        name: str_value(&field("name"), get("name")?, MAX_ITEM_NAME)?,
        quantity: int_value(&field("quantity"), get("quantity")?, 1, MAX_QUANTITY)?,
        unit_price_cents: int_value(
            &field("unit_price_cents"),
            get("unit_price_cents")?,
            0,
            MAX_UNIT_PRICE_CENTS,
        )?,
    })
}

/// `GET /orders?limit=&offset=&user_id=`.
pub(crate) async fn list(State(state): State<AppState>, query: RawQuery) -> Result<Response> {
    let page = Page::from_query(&query)?;
    let user_id = query_int(&query, "user_id", 1, i64::MAX)?;
    let orders = storage::list(&state.db, page, user_id).await?;
    Ok(response::json(StatusCode::OK, &orders))
}

/// `GET /orders/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let order = storage::get(&state.db, id).await?;
    Ok(response::json(StatusCode::OK, &order))
}

/// `POST /orders`, honouring `Idempotency-Key`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Headers(headers): Headers,
    Body(body): Body,
) -> Result<Response> {
    let key = idempotency::key_from_headers(&headers)?;
    let body = JsonObject::parse(&body)?;
    let order = new_order(&body)?;
    let fingerprint = format!("POST /orders {}", body.canonical());
    let idempotency = key.map(|key| (key, fingerprint));
    let created = storage::create(&state.db, order, idempotency).await?;
    Ok(created.into_response())
}

/// `PUT /orders/{id}`: replaces user, status and items.
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let order = new_order(&JsonObject::parse(&body)?)?;
    let updated = storage::update(&state.db, id, order).await?;
    Ok(response::json(StatusCode::OK, &updated))
}

/// `DELETE /orders/{id}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    storage::delete(&state.db, id).await?;
    Ok(response::no_content())
}
