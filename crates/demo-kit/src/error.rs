//! The one error type of the demo services and its one mapping to HTTP.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};

use crate::stack::HttpResponse;

/// What went wrong, as a machine-readable code; each code has exactly one HTTP status.
///
/// This is the single place where failures are mapped to statuses (STYLE.md, "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed input: bad id, malformed JSON, bad query or header → 400.
    BadRequest,
    /// The client must authenticate → 401.
    Unauthorized,
    /// The client may not do this here (e.g. admin route from a non-loopback peer) → 403.
    Forbidden,
    /// Unknown id or unknown route → 404.
    NotFound,
    /// Known route, wrong method → 405.
    MethodNotAllowed,
    /// The request conflicts with stored data (duplicate email) → 409.
    Conflict,
    /// Body over the limit → 413.
    PayloadTooLarge,
    /// Well-formed JSON with missing or invalid fields → 422.
    ValidationFailed,
    /// An `Idempotency-Key` was reused with a different request → 422.
    IdempotencyKeyReused,
    /// Rate limited → 429.
    TooManyRequests,
    /// A failure we did not expect; details go to the log, not the client → 500.
    Internal,
    /// A failure injected on purpose (fault injection) → 500.
    InjectedFault,
    /// An upstream could not be reached or answered garbage → 502.
    BadGateway,
    /// The service (or its database, or every upstream) is unavailable → 503.
    ServiceUnavailable,
    /// An upstream did not answer in time → 504.
    GatewayTimeout,
}

impl ErrorCode {
    /// The HTTP status for this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ValidationFailed | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal | Self::InjectedFault => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The code as it appears in the JSON body (`"error": {"code": ...}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ValidationFailed => "validation_failed",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::TooManyRequests => "too_many_requests",
            Self::Internal => "internal",
            Self::InjectedFault => "injected_fault",
            Self::BadGateway => "bad_gateway",
            Self::ServiceUnavailable => "service_unavailable",
            Self::GatewayTimeout => "gateway_timeout",
        }
    }

    /// The code used for an error response of `status` that was not made by [`AppError`]
    /// (rustapi-rs's own 404/405, tower-http's 413, ...).
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            422 => Self::ValidationFailed,
            429 => Self::TooManyRequests,
            502 => Self::BadGateway,
            503 => Self::ServiceUnavailable,
            504 => Self::GatewayTimeout,
            400..=499 => Self::BadRequest,
            _ => Self::Internal,
        }
    }
}

/// An error answered as `{"error": {"code": "...", "message": "..."}}` with the status of its
/// [`ErrorCode`]. Validation errors also carry `"field"`, the name of the offending field.
///
/// Handlers return `Result<Response, AppError>`; the type implements rustapi-rs's
/// `IntoResponse`, and [`AppError::into_http_response`] serves tower code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct AppError {
    code: ErrorCode,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
    allow: Option<HeaderValue>,
}

/// Marks a response whose body already has the JSON error shape, so the error normalisation
/// layer leaves it alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonErrorBody;

impl AppError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            allow: None,
        }
    }

    /// 400: malformed input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 404: nothing here.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 409: conflicts with stored data.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 403: not allowed from here.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 413: the request body is over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 422: `field` is missing or invalid; the message names the field.
    pub fn invalid_field(field: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        let field = field.into();
        let mut err = Self::new(ErrorCode::ValidationFailed, format!("{field}: {problem}"));
        err.field = Some(field);
        err
    }

    /// 503: unavailable for now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServiceUnavailable, message)
    }

    /// 500 with a generic message; `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(ErrorCode::Internal, "internal server error")
    }

    /// Adds `Retry-After: secs` to the response (rate limits, open breakers).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Adds an `Allow` header (405 answers).
    pub fn with_allow(mut self, allow: HeaderValue) -> Self {
        self.allow = Some(allow);
        self
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The error's HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The invalid field, for validation errors.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The JSON body, `{"error": {"code": ..., "message": ...}}`.
    pub fn body(&self) -> serde_json::Value {
        let mut inner = serde_json::json!({
            "code": self.code.as_str(),
            "message": self.message,
        });
        if let Some(field) = &self.field {
            inner["field"] = serde_json::Value::String(field.clone());
        }
        serde_json::json!({ "error": inner })
    }

    fn into_parts(self) -> (http::response::Parts, Bytes) {
        let body = Bytes::from(self.body().to_string());
        let mut res = http::Response::new(());
        *res.status_mut() = self.status();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, allow);
        }
        res.extensions_mut().insert(JsonErrorBody);
        (res.into_parts().0, body)
    }

    /// The error as a response for tower services (such as the [`Stack`](crate::Stack) layers).
    pub fn into_http_response(self) -> HttpResponse {
        let (parts, body) = self.into_parts();
        http::Response::from_parts(
            parts,
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }
}

impl rustapi_core::IntoResponse for AppError {
    fn into_response(self) -> rustapi_core::Response {
        let (parts, body) = self.into_parts();
        http::Response::from_parts(parts, rustapi_core::ResponseBody::new(body))
    }
}

impl rustapi_openapi::ResponseModifier for AppError {
    fn update_response(_op: &mut rustapi_openapi::Operation) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_code_and_message() {
        let err = AppError::not_found("user 7 not found");
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            err.body(),
            serde_json::json!({"error": {"code": "not_found", "message": "user 7 not found"}})
        );
    }

    #[test]
    fn invalid_field_names_the_field() {
        let err = AppError::invalid_field("email", "must contain @");
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.field(), Some("email"));
        assert!(err.message().contains("email"));
        assert_eq!(err.body()["error"]["field"], "email");
    }

    #[test]
    fn every_code_maps_back_from_its_status() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::ServiceUnavailable,
            ErrorCode::GatewayTimeout,
        ] {
            assert_eq!(ErrorCode::from_status(code.status()), code);
        }
    }
}
