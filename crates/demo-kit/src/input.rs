//! Parsing untrusted input into values or [`AppError`]s: ids, pagination, JSON bodies.
//!
//! The services parse bodies themselves instead of using rustapi-rs's `Json<T>` extractor,
//! because that extractor answers 400 both for malformed JSON and for a missing field, while
//! the API promises 400 for the first and 422 naming the field for the second.

use serde_json::{Map, Value};

use crate::error::{AppError, ErrorCode};
use crate::extract::RawQuery;

/// Parses a path id: a positive integer that fits `i64`.
///
/// # Errors
/// 400 for anything else (non-numeric, zero, negative, too large).
pub fn parse_id(raw: &str) -> Result<i64, AppError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::bad_request(format!(
            "id must be a positive integer, got {raw:?}"
        )));
    }
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(AppError::bad_request(format!("id {raw} is out of range"))),
    }
}

/// One page of a listing, as the services answer it: the items, the page asked for, and how
/// many items match in all.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listing<T> {
    /// The items on this page, by id.
    pub items: Vec<T>,
    /// The page size asked for.
    pub limit: i64,
    /// The offset asked for.
    pub offset: i64,
    /// How many items match, on every page.
    pub total: i64,
}

/// `limit` and `offset` query parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// At most this many items (1..=[`Page::MAX_LIMIT`], default [`Page::DEFAULT_LIMIT`]).
    pub limit: i64,
    /// Skip this many items (default 0).
    pub offset: i64,
}

impl Page {
    /// Items per page when `limit` is not given.
    pub const DEFAULT_LIMIT: i64 = 20;
    /// The largest `limit` accepted.
    pub const MAX_LIMIT: i64 = 100;

    /// `items`, this page of a listing of `total` items.
    pub fn listing<T>(self, items: Vec<T>, total: i64) -> Listing<T> {
        Listing {
            items,
            limit: self.limit,
            offset: self.offset,
            total,
        }
    }

    /// Reads `limit` and `offset` from the query string.
    ///
    /// # Errors
    /// 400 naming the parameter when a value is not a number or out of range.
    pub fn from_query(query: &RawQuery) -> Result<Self, AppError> {
        let limit = query_int(query, "limit", 1, Self::MAX_LIMIT)?.unwrap_or(Self::DEFAULT_LIMIT);
        let offset = query_int(query, "offset", 0, i64::MAX)?.unwrap_or(0);
        Ok(Self { limit, offset })
    }
}

/// An optional integer query parameter within `min..=max`.
///
/// # Errors
/// 400 naming the parameter when present but not an integer in range.
pub fn query_int(
    query: &RawQuery,
    name: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, AppError> {
    match query.get(name) {
        None => Ok(None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(AppError::bad_request(format!(
                "query parameter {name} must be an integer from {min} to {max}, got {raw:?}"
            ))),
        },
    }
}

/// A request body that parsed as a JSON object; its accessors answer 422 naming the field.
#[derive(Debug, Clone)]
pub struct JsonObject {
    map: Map<String, Value>,
    canonical: String,
}

impl JsonObject {
    /// Parses `body` as a JSON object.
    ///
    /// # Errors
    /// 400 when the body is not JSON (including an empty body); 422 when it is JSON but not an
    /// object.
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| AppError::bad_request(format!("malformed JSON: {err}")))?;
        match value {
            Value::Object(map) => {
                // serde_json's map is ordered by key, so this string is the same for any two
                // bodies with the same content: a fingerprint for idempotency keys.
                let canonical = Value::Object(map.clone()).to_string();
                Ok(Self { map, canonical })
            }
            _ => Err(AppError::new(
                ErrorCode::ValidationFailed,
                "request body must be a JSON object",
            )),
        }
    }

    /// The object re-serialised with keys in order: equal for bodies with equal content.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The raw value of a field, if present and not null.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// A required string field, trimmed, non-empty, at most `max_len` characters.
    ///
    /// # Errors
    /// 422 naming the field when missing, not a string, blank or too long.
    pub fn required_str(&self, field: &str, max_len: usize) -> Result<String, AppError> {
        match self.get(field) {
            None => Err(AppError::invalid_field(field, "is required")),
            Some(value) => str_value(field, value, max_len),
        }
    }

    /// A required integer field within `min..=max`.
    ///
    /// # Errors
    /// 422 naming the field when missing, not an integer, or out of range.
    pub fn required_int(&self, field: &str, min: i64, max: i64) -> Result<i64, AppError> {
        match self.get(field) {
            None => Err(AppError::invalid_field(field, "is required")),
            Some(value) => int_value(field, value, min, max),
        }
    }

    /// A required array field.
    ///
    /// # Errors
    /// 422 naming the field when missing or not an array.
    pub fn required_array(&self, field: &str) -> Result<&Vec<Value>, AppError> {
        match self.get(field) {
            None => Err(AppError::invalid_field(field, "is required")),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(AppError::invalid_field(field, "must be an array")),
        }
    }
}

/// `value` as a trimmed, non-empty string of at most `max_len` characters.
///
/// # Errors
/// 422 naming `field`.
pub fn str_value(field: &str, value: &Value, max_len: usize) -> Result<String, AppError> {
    let Some(s) = value.as_str() else {
        return Err(AppError::invalid_field(field, "must be a string"));
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(AppError::invalid_field(field, "must not be empty"));
    }
    if s.chars().count() > max_len {
        return Err(AppError::invalid_field(
            field,
            format!("must be at most {max_len} characters"),
        ));
    }
    Ok(s.to_owned())
}

/// `value` as an integer within `min..=max`.
///
/// # Errors
/// 422 naming `field`.
pub fn int_value(field: &str, value: &Value, min: i64, max: i64) -> Result<i64, AppError> {
    match value.as_i64() {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(_) => Err(AppError::invalid_field(
            field,
            format!("must be from {min} to {max}"),
        )),
        None => Err(AppError::invalid_field(field, "must be an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_positive_i64() {
        assert_eq!(parse_id("42").unwrap(), 42);
        for bad in [
            "",
            "abc",
            "-1",
            "0",
            "1.5",
            "99999999999999999999",
            "+1",
            " 1",
        ] {
            assert_eq!(parse_id(bad).unwrap_err().status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn page_defaults_and_bounds() {
        let page = Page::from_query(&RawQuery::default()).unwrap();
        assert_eq!(
            page,
            Page {
                limit: 20,
                offset: 0
            }
        );
        let page = Page::from_query(&RawQuery("limit=5&offset=10".into())).unwrap();
        assert_eq!(
            page,
            Page {
                limit: 5,
                offset: 10
            }
        );
        for bad in ["limit=0", "limit=101", "limit=x", "offset=-1"] {
            assert!(Page::from_query(&RawQuery(bad.into())).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_json_is_400_and_wrong_shape_is_422() {
        assert_eq!(JsonObject::parse(b"{").unwrap_err().status(), 400);
        assert_eq!(JsonObject::parse(b"").unwrap_err().status(), 400);
        assert_eq!(JsonObject::parse(b"[1]").unwrap_err().status(), 422);
    }

    #[test]
    fn field_errors_name_the_field() {
        let obj = JsonObject::parse(br#"{"name": "  ", "n": "x", "q": 0}"#).unwrap();
        assert_eq!(
            obj.required_str("name", 10).unwrap_err().field(),
            Some("name")
        );
        assert_eq!(
            obj.required_str("email", 10).unwrap_err().field(),
            Some("email")
        );
        assert_eq!(obj.required_int("n", 1, 5).unwrap_err().field(), Some("n"));
        assert_eq!(obj.required_int("q", 1, 5).unwrap_err().field(), Some("q"));
    }

    #[test]
    fn canonical_form_ignores_key_order_and_spacing() {
        let a = JsonObject::parse(br#"{"a": 1, "b": [2]}"#).unwrap();
        let b = JsonObject::parse(br#"{"b":[2],"a":1}"#).unwrap();
        assert_eq!(a.canonical(), b.canonical());
    }
}
