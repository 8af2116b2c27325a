//! The last touches on every answer: `x-served-by`, and one JSON error shape for every error
//! answer, including those made outside the handlers.
//!
//! rustapi-rs answers its own 404/405 and extractor failures as
//! `{"error": {"type", "message"}, "error_id"}` and tower-http's body limit answers 413 in plain
//! text; this layer rewrites such answers into `{"error": {"code", "message"}}`. Answers made by
//! [`AppError`] are marked and pass untouched, and so do bodies already in the shape.
//!
//! An answer that needs no rewriting (nearly all) passes with its body as it came: the future
//! is this layer's own, and only a rewrite, which reads the old body, is boxed.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri, header};
use http_body::Body;
use http_body_util::{BodyExt, Either, Limited};
use pin_project_lite::pin_project;
use tower::Service;

use crate::SERVED_BY;
use crate::error::{AppError, ErrorCode, JsonErrorBody};
use crate::stack::{BoxError, BoxFuture, HttpResponse, ResponseBody};

/// Adds `x-served-by` to every answer and rewrites error answers that were not made by
/// [`AppError`] into the JSON error shape.
#[derive(Debug, Clone)]
pub(crate) struct JsonErrorsLayer {
    pub(crate) body_limit: usize,
    pub(crate) served_by: Option<HeaderValue>,
}

impl<S> tower::Layer<S> for JsonErrorsLayer {
    type Service = JsonErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JsonErrors {
            inner,
            body_limit: self.body_limit,
            served_by: self.served_by.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct JsonErrors<S> {
    inner: S,
    body_limit: usize,
    served_by: Option<HeaderValue>,
}

/// An answer's body: as the inner service made it, or rewritten.
pub(crate) type AnswerBody<B> = Either<B, ResponseBody>;

impl<S, B, ResBody> Service<http::Request<B>> for JsonErrors<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>, Error = Infallible>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<AnswerBody<ResBody>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The method and URI are kept for the message of a rewritten answer; both clones are
        // reference counts (or a copy of a standard method), not allocations.
        let method = req.method().clone();
        let uri = req.uri().clone();
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(req),
            },
            method,
            uri,
            body_limit: self.body_limit,
            served_by: self.served_by.clone(),
        }
    }
}

pin_project! {
    /// The future of [`JsonErrors`]: the inner answer, rewritten when it must be.
    pub(crate) struct ResponseFuture<F, ResBody> {
        #[pin]
        state: State<F, ResBody>,
        method: Method,
        uri: Uri,
        body_limit: usize,
        served_by: Option<HeaderValue>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, ResBody> {
        Inner {
            #[pin]
            future: F,
        },
        Rewriting {
            future: BoxFuture<HttpResponse>,
            // Ties the state to the inner body type it would have passed on.
            _body: std::marker::PhantomData<fn() -> ResBody>,
        },
    }
}

impl<F, ResBody> Future for ResponseFuture<F, ResBody>
where
    F: Future<Output = Result<http::Response<ResBody>, Infallible>>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<http::Response<AnswerBody<ResBody>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut answer = loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future } => {
                    let Ok(res) = ready!(future.poll(cx));
                    let status = res.status();
                    if !(status.is_client_error() || status.is_server_error())
                        || res.extensions().get::<JsonErrorBody>().is_some()
                    {
                        break res.map(Either::Left);
                    }
                    let rewrite = normalize(
                        res,
                        this.method.clone(),
                        this.uri.path().to_owned(),
                        *this.body_limit,
                    );
                    this.state.set(State::Rewriting {
                        future: Box::pin(rewrite),
                        _body: std::marker::PhantomData,
                    });
                }
                StateProj::Rewriting { future, .. } => {
                    break ready!(future.as_mut().poll(cx)).map(Either::Right);
                }
            }
        };
        if let Some(name) = this.served_by {
            answer
                .headers_mut()
                .insert(HeaderName::from_static(SERVED_BY), name.clone());
        }
        Poll::Ready(Ok(answer))
    }
}

/// Turns a foreign error answer into an [`AppError`] answer with the same status, keeping its
/// other headers (`Allow`, `Retry-After`, ...). A body that already has the JSON error shape
/// (say, an upstream's 404 passed through by the gateway) is kept as it is.
async fn normalize<B>(
    res: http::Response<B>,
    method: Method,
    path: String,
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
