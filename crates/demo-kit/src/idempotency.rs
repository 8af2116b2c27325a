//! `Idempotency-Key` on POST, stored in the service's own database (feature `sqlite`; the
//! PostgreSQL counterpart is [`postgres`], feature `postgres`).
//!
//! A client (or the gateway, retrying) sends the same POST again with the same key: the first
//! answer is replayed (same status, same body, same id) and nothing new is written. The same key
//! with a different request is a client bug and gets 422. The key row is written in the same
//! transaction as the record it describes, so there is never a record without its key or a key
//! without its record; a `BEGIN IMMEDIATE` transaction makes the lookup and the insert one step,
//! even across processes sharing the file.

use http::{HeaderMap, HeaderValue, StatusCode, header};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::error::{AppError, ErrorCode};

#[cfg(feature = "postgres")]
pub mod postgres;

/// The request header carrying the key.
pub const HEADER: &str = "idempotency-key";

/// Set to `true` on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotency-replayed";

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The table of keys; run it in the service's schema set-up.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key         TEXT PRIMARY KEY,
    request     TEXT NOT NULL,
    status      INTEGER NOT NULL,
    response    TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);";

/// The key of a request, if it has one.
///
/// # Errors
/// 400 when the header is present but empty, longer than [`MAX_KEY_LEN`], or not visible ASCII.
pub fn key_from_headers(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            AppError::bad_request(format!(
                "{HEADER} must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// A stored answer to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The original status.
    pub status: u16,
    /// The original JSON body.
    pub body: String,
}

impl StoredResponse {
    /// The replayed answer, marked with [`REPLAYED_HEADER`].
    pub fn into_response(self) -> rustapi_core::Response {
        let mut res = http::Response::new(rustapi_core::ResponseBody::from(self.body));
        *res.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res.headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        res
    }
}

/// Looks `key` up inside the write transaction. `fingerprint` identifies the request (method,
/// path and canonical body).
///
/// # Errors
/// 422 `idempotency_key_reused` when the key was used for a different request; database errors.
pub fn lookup(
    tx: &Transaction<'_>,
    key: &str,
    fingerprint: &str,
) -> Result<Option<StoredResponse>, AppError> {
    let found: Option<(String, u16, String)> = tx
        .query_row(
            "SELECT request, status, response FROM idempotency_keys WHERE key = ?1",
            params![key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    replay_or_refuse(key, fingerprint, found)
}

/// What a stored `(request, status, response)` for `key` means for a request with
/// `fingerprint`: nothing stored, a replay, or a key reused for another request (422).
fn replay_or_refuse(
    key: &str,
    fingerprint: &str,
    found: Option<(String, u16, String)>,
) -> Result<Option<StoredResponse>, AppError> {
    match found {
        None => Ok(None),
        Some((request, status, body)) if request == fingerprint => {
            Ok(Some(StoredResponse { status, body }))
        }
        Some(_) => Err(AppError::new(
            ErrorCode::IdempotencyKeyReused,
            format!("{HEADER} {key:?} was already used with a different request"),
        )),
    }
}

/// Records the answer for `key`, inside the same transaction as the record it created.
///
/// # Errors
/// Database errors.
pub fn store(
    tx: &Transaction<'_>,
    key: &str,
    fingerprint: &str,
    status: StatusCode,
    body: &str,
) -> Result<(), AppError> {
    tx.execute(
        "INSERT INTO idempotency_keys (key, request, status, response) VALUES (?1, ?2, ?3, ?4)",
        params![key, fingerprint, status.as_u16(), body],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_validation() {
        let mut headers = HeaderMap::new();
        assert_eq!(key_from_headers(&headers).unwrap(), None);
        headers.insert(HEADER, HeaderValue::from_static("abc-1"));
        assert_eq!(
            key_from_headers(&headers).unwrap().as_deref(),
            Some("abc-1")
        );
        headers.insert(HEADER, HeaderValue::from_static(""));
        assert_eq!(key_from_headers(&headers).unwrap_err().status(), 400);
        headers.insert(HEADER, HeaderValue::from_str(&"k".repeat(256)).unwrap());
        assert_eq!(key_from_headers(&headers).unwrap_err().status(), 400);
    }

    #[test]
    fn same_request_replays_and_different_request_is_422() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let tx = conn.transaction().unwrap();
        assert_eq!(lookup(&tx, "k", "POST /x {}").unwrap(), None);
        store(&tx, "k", "POST /x {}", StatusCode::CREATED, r#"{"id":1}"#).unwrap();
        let replay = lookup(&tx, "k", "POST /x {}").unwrap().unwrap();
        assert_eq!(replay.status, 201);
        assert_eq!(replay.body, r#"{"id":1}"#);
        let err = lookup(&tx, "k", "POST /x {\"a\":1}").unwrap_err();
        assert_eq!(err.status(), 422);
        assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
    }
}

/// What a create did.
#[derive(Debug)]
pub enum Created {
    /// A new record was stored; its JSON, as answered.
    New(String),
    /// The idempotency key was seen before with the same request: replay this.
    Replay(StoredResponse),
}

impl Created {
    /// The answer: 201 with the new record, or the first answer replayed.
    pub fn into_response(self) -> rustapi_core::Response {
        match self {
            Self::New(json) => crate::response::raw_json(StatusCode::CREATED, json),
            Self::Replay(stored) => stored.into_response(),
        }
    }
}

/// Creates a record at most once per idempotency key. In one `BEGIN IMMEDIATE` transaction: a
/// key seen before with the same request replays the stored answer (with another request,
/// [`lookup`] refuses it); otherwise `insert` writes the record and returns its JSON, which is
/// stored with the key before the commit, so record and key land together or not at all.
///
/// `idempotency` is the key and the request's fingerprint, when the request has a key.
///
/// # Errors
/// A key reused for another request (422); whatever `insert` fails with; database errors. On
/// any error nothing is written.
pub fn create_once<F>(
    conn: &mut Connection,
    idempotency: Option<(&str, &str)>,
    insert: F,
) -> Result<Created, AppError>
where
    F: FnOnce(&Transaction<'_>) -> Result<String, AppError>,
{
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some((key, fingerprint)) = idempotency {
        if let Some(stored) = lookup(&tx, key, fingerprint)? {
            return Ok(Created::Replay(stored));
        }
    }
    let body = insert(&tx)?;
    if let Some((key, fingerprint)) = idempotency {
        store(&tx, key, fingerprint, StatusCode::CREATED, &body)?;
    }
    tx.commit()?;
    Ok(Created::New(body))
}
