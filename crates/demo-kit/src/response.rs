//! Building JSON responses for rustapi-rs handlers.
//!
//! rustapi-rs's `Json<T>` response needs `T: Schema` and cannot carry a status other than 200;
//! `(StatusCode, Json<T>)` does not compile as a handler result. Handlers here return a plain
//! `http::Response` built by these helpers.

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// `value` as a JSON response with `status`. A value that fails to serialise (it cannot for the
/// plain data types used here) becomes a 500 [`AppError`](crate::AppError) answer.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> rustapi_core::Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut res = http::Response::new(rustapi_core::ResponseBody::from(body));
            *res.status_mut() = status;
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(err) => rustapi_core::IntoResponse::into_response(crate::AppError::internal(err)),
    }
}

/// An empty `204 No Content` response.
pub fn no_content() -> rustapi_core::Response {
    let mut res = http::Response::new(rustapi_core::ResponseBody::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

/// An already-serialised JSON `body` with `status` (e.g. a stored answer being returned).
pub fn raw_json(status: StatusCode, body: String) -> rustapi_core::Response {
    let mut res = http::Response::new(rustapi_core::ResponseBody::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// `GET /health`: the liveness answer, `200 {"status":"ok","replica":...}` while the process
/// serves. It never asks the database: an orchestrator restarts a replica whose liveness
/// fails, and restarting replicas does not bring a database back.
pub fn alive(replica: &str) -> rustapi_core::Response {
    json(
        StatusCode::OK,
        &serde_json::json!({"status": "ok", "replica": replica}),
    )
}

/// `GET /ready`: the readiness answer, 200 when `database` (the result of a ping) is `Ok`, 503
/// with the error shape otherwise. Load balancers (a Kubernetes Service, the gateway's health
/// check) send traffic only to a replica that is ready.
pub fn ready(replica: &str, database: Result<(), crate::AppError>) -> rustapi_core::Response {
    match database {
        Ok(()) => json(
            StatusCode::OK,
            &serde_json::json!({"status": "ready", "replica": replica}),
        ),
        Err(err) => {
            tracing::warn!(%err, "readiness check failed: the database does not answer");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "unavailable", "replica": replica,
                        "error": {"code": "database_unavailable", "message": "the database cannot be reached"}}),
            )
        }
    }
}
