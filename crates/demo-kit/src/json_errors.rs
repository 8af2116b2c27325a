//! One JSON error shape for every error answer, including those made outside the handlers.
//!
//! rustapi-rs answers its own 404/405 and extractor failures as
//! `{"error": {"type", "message"}, "error_id"}` and tower-http's body limit answers 413 in plain
//! text; this layer rewrites such answers into `{"error": {"code", "message"}}`. Answers made by
//! [`AppError`] are marked and pass untouched, and so do bodies already in the shape.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, Method, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower::Service;

use crate::error::{AppError, ErrorCode, JsonErrorBody};
use crate::stack::{BoxError, BoxFuture, HttpResponse, boxed};

/// Rewrites error responses that were not made by [`AppError`] into the JSON error shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonErrorsLayer {
    pub(crate) body_limit: usize,
}

impl<S> tower::Layer<S> for JsonErrorsLayer {
    type Service = JsonErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JsonErrors {
            inner,
            body_limit: self.body_limit,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct JsonErrors<S> {
    inner: S,
    body_limit: usize,
}

impl<S, B, ResBody> Service<http::Request<B>> for JsonErrors<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>, Error = Infallible>,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<Result<HttpResponse, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let body_limit = self.body_limit;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let status = res.status();
            if !(status.is_client_error() || status.is_server_error())
                || res.extensions().get::<JsonErrorBody>().is_some()
            {
                return Ok(boxed(res));
            }
            Ok(normalize(res, &method, &path, body_limit).await)
        })
    }
}

/// Turns a foreign error answer into an [`AppError`] answer with the same status, keeping its
/// other headers (`Allow`, `Retry-After`, ...). A body that already has the JSON error shape
/// (say, an upstream's 404 passed through by the gateway) is kept as it is.
async fn normalize<B>(
    res: http::Response<B>,
    method: &Method,
    path: &str,
    limit: usize,
) -> HttpResponse
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = res.into_parts();
    let status = parts.status;
    let bytes = Limited::new(body, 64 * 1024)
        .collect()
        .await
        .ok()
        .map(http_body_util::Collected::to_bytes);
    let original = bytes
        .as_ref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
    // Already in our shape (e.g. an upstream's answer passed through by a proxy): keep it.
    if let (Some(bytes), Some(value)) = (&bytes, &original) {
        if value["error"]["code"].is_string() && value["error"]["message"].is_string() {
            return http::Response::from_parts(
                parts,
                http_body_util::Full::new(bytes.clone())
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
        }
    }
    // rustapi-rs answers `{"error": {"type": ..., "message": ...}}`; keep its message for 4xx.
    let original_message = original
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str())
        .map(str::to_owned);
    let code = ErrorCode::from_status(status);
    let message = match code {
        ErrorCode::NotFound => format!("no route for {method} {path}"),
        ErrorCode::MethodNotAllowed => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("method {method} is not allowed on {path} (allowed: {allowed})")
        }
        ErrorCode::PayloadTooLarge => format!("request body is larger than {limit} bytes"),
        _ if status.is_server_error() => {
            tracing::error!(%status, body = ?original, "error answer from inside the app");
            "internal server error".to_owned()
        }
        _ => original_message.unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_lowercase()
        }),
    };
    let mut new = AppError::new(code, message).into_http_response();
    *new.status_mut() = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let mut last: Option<HeaderName> = None;
    for (name, value) in parts.headers.drain() {
        if let Some(name) = name {
            last = Some(name);
        }
        if let Some(name) = &last {
            new.headers_mut().append(name.clone(), value);
        }
    }
    new
}
