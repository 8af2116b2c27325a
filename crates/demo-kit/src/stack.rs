//! The tower stack around a rustapi-rs app: what rustapi-rs's own server would do, plus the
//! layers it cannot take.
//!
//! Outermost first:
//!
//! | layer | why |
//! |---|---|
//! | `x-served-by` | every answer, errors included, says which replica made it |
//! | `SetRequestId` / `PropagateRequestId` (tower-http) | keep the caller's `x-request-id` or make one, and echo it; rustapi-rs's `RequestIdLayer` always makes a new one |
//! | `Trace` (tower-http) | one span per request carrying the request id; 5xx logged as failures |
//! | JSON errors | rewrites error answers not made by [`AppError`] (rustapi-rs's 404/405 and extractor errors, tower-http's plain-text 413) into the one JSON shape |
//! | `RequestBodyLimit` (tower-http) | rejects an over-long `Content-Length` before reading; caps a chunked body as it streams |
//! | faults | optional injected latency and 500s, for demos and tests ([`faults`](crate::faults)) |
//! | [`RustApiService`] | reads the body (capped), then `request_dispatcher().dispatch()` |

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use rustapi_core::{BodyVariant, PathParams, RequestDispatcher, RustApi};
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::error::{AppError, ErrorCode, JsonErrorBody};
use crate::faults::{FaultLayer, Faults};
use crate::request_id::CounterRequestId;
use crate::{REQUEST_ID, SERVED_BY};

/// The boxed error type used by bodies and layers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body of every [`HttpService`].
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// The response type of every [`HttpService`].
pub type HttpResponse = http::Response<ResponseBody>;

/// A rustapi-rs app behind the [`Stack`] layers, as a cloneable tower service.
///
/// `B` is the request body: [`Incoming`] when served by [`serve`](crate::serve), any
/// `http_body::Body` (e.g. `Full<Bytes>`) for in-process tests. It never fails: every failure is
/// an HTTP answer.
pub type HttpService<B = Incoming> = BoxCloneService<http::Request<B>, HttpResponse, Infallible>;

/// The default request body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

fn boxed<B>(res: http::Response<B>) -> HttpResponse
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    res.map(|body| body.map_err(Into::into).boxed_unsync())
}

/// Builds the [`HttpService`] for a rustapi-rs app: the layers above, configured once.
#[derive(Debug, Clone)]
pub struct Stack {
    body_limit: usize,
    served_by: Option<HeaderValue>,
    faults: Option<Faults>,
}

impl Default for Stack {
    fn default() -> Self {
        Self::new()
    }
}

impl Stack {
    /// A stack with the [`DEFAULT_BODY_LIMIT`], no `x-served-by` header and no faults.
    pub fn new() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            served_by: None,
            faults: None,
        }
    }

    /// Answers 413 to request bodies over `limit` bytes, with or without `Content-Length`.
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// Adds `x-served-by: <name>` to every response. A name that is not a valid header value
    /// is replaced by `invalid-replica-name` (and logged) rather than failing.
    pub fn with_served_by(mut self, name: &str) -> Self {
        self.served_by = Some(HeaderValue::from_str(name).unwrap_or_else(|_| {
            tracing::warn!(name, "replica name is not a valid header value");
            HeaderValue::from_static("invalid-replica-name")
        }));
        self
    }

    /// Injects the latency and failures configured in `faults` into every request outside
    /// `/admin/`.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = Some(faults);
        self
    }

    /// The configured body limit in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Wraps `app` in the layers. The app's routes and state are captured now; later changes to
    /// `app` are not seen.
    pub fn service<B>(&self, app: &RustApi) -> HttpService<B>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.wrap(RustApiService::new(app, self.body_limit))
    }

    /// Wraps any tower service that never fails (e.g. a proxy) in the same layers.
    pub fn wrap<S, B>(&self, inner: S) -> HttpService<B>
    where
        S: Service<
                http::Request<tower_http::body::Limited<B>>,
                Response = HttpResponse,
                Error = Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let served_by = self.served_by.clone();
        let service = ServiceBuilder::new()
            .map_response(move |mut res: HttpResponse| {
                if let Some(name) = &served_by {
                    res.headers_mut()
                        .insert(HeaderName::from_static(SERVED_BY), name.clone());
                }
                res
            })
            .layer(SetRequestIdLayer::new(
                HeaderName::from_static(REQUEST_ID),
                CounterRequestId::new(),
            ))
            .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
                REQUEST_ID,
            )))
            .map_response(boxed)
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &http::Request<B>| {
                        let id = req
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!(
                            "request",
                            method = %req.method(),
                            path = %req.uri().path(),
                            request_id = %id,
                        )
                    })
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(JsonErrorsLayer {
                body_limit: self.body_limit,
            })
            .layer(RequestBodyLimitLayer::new(self.body_limit))
            .layer(FaultLayer::new(self.faults.clone()))
            .service(inner);
        BoxCloneService::new(service)
    }
}

/// The innermost service: reads the request body (at most `body_limit` bytes, 413 beyond) and
/// hands the request to the app's `request_dispatcher()`. `HEAD` is dispatched as `GET`, since
/// rustapi-rs routes have no `HEAD`; hyper leaves the body out of a `HEAD` answer.
///
/// rustapi-rs's `Request` holds either hyper's `Incoming` or buffered bytes; buffering here lets
/// the same service take any body type (in-process tests, bodies wrapped by tower-http layers)
/// and bounds the body no matter how it arrives. rustapi-rs's own body limit is applied only by
/// its `run()`, not by the dispatcher.
#[derive(Clone)]
pub struct RustApiService {
    dispatcher: RequestDispatcher,
    body_limit: usize,
}

impl std::fmt::Debug for RustApiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustApiService")
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl RustApiService {
    /// Serves `app`'s routes, state and rustapi middleware, reading at most `body_limit` bytes
    /// of each request body.
    pub fn new(app: &RustApi, body_limit: usize) -> Self {
        Self {
            dispatcher: app.request_dispatcher(),
            body_limit,
        }
    }
}

/// Whether a body error (anywhere in its source chain) is a length-limit error.
fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = current {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = err.source();
    }
    false
}

impl<B> Service<http::Request<B>> for RustApiService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<Result<HttpResponse, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let dispatcher = self.dispatcher.clone();
        let limit = self.body_limit;
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            // rustapi-rs has no HEAD routes; answer HEAD like GET (hyper drops the body).
            if parts.method == Method::HEAD {
                parts.method = Method::GET;
            }
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) if is_length_limit(&*err) => {
                    return Ok(AppError::payload_too_large(limit).into_http_response());
                }
                Err(err) => {
                    // The client went away or sent a broken chunked encoding.
                    tracing::debug!(%err, "cannot read request body");
                    return Ok(
                        AppError::bad_request("cannot read request body").into_http_response()
                    );
                }
            };
            let request = rustapi_core::Request::new(
                parts,
                BodyVariant::Buffered(bytes),
                dispatcher.state_ref(),
                PathParams::new(),
            );
            Ok(boxed(dispatcher.dispatch(request).await))
        })
    }
}

/// Rewrites error responses that were not made by [`AppError`] into the JSON error shape.
#[derive(Debug, Clone, Copy)]
struct JsonErrorsLayer {
    body_limit: usize,
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
struct JsonErrors<S> {
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
