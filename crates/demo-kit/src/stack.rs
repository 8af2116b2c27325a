//! The tower stack around a rustapi-rs app: what rustapi-rs's own server would do, plus the
//! layers it cannot take.
//!
//! Outermost first:
//!
//! | layer | why |
//! |---|---|
//! | `SetRequestId` / `PropagateRequestId` (tower-http, `MakeRequestUuid`) | keep the caller's `x-request-id` or make a UUID, and echo it; rustapi-rs's `RequestIdLayer` always makes a new one |
//! | [`ServerContextLayer`](crate::telemetry::ServerContextLayer) | continues the caller's W3C trace context (`traceparent`, `tracestate`) for the request's future, and (when no spans are exported) gives log lines the request's fields |
//! | `Trace` (tower-http) | when spans are exported, one OpenTelemetry server span per request ([`server_span`](crate::telemetry::server_span)), continuing the caller's `traceparent`, carrying the request id and trace id; 5xx logged as failures |
//! | answers ([`json_errors`](crate::json_errors)) | every answer says which replica made it (`x-served-by`), and error answers not made by [`AppError`](crate::AppError) (rustapi-rs's 404/405 and extractor errors, tower-http's plain-text 413) are rewritten into the one JSON shape |
//! | `RequestBodyLimit` (tower-http) | the one cap on the request body: rejects an over-long `Content-Length` before reading, and caps a chunked body as it streams |
//! | faults | optional injected latency and 500s, for demos and tests ([`faults`](crate::faults)) |
//! | [`RustApiService`] | reads the (capped) body, then `request_dispatcher().dispatch()` |
//!
//! Only the outermost service and the innermost future are boxed (the one
//! [`HttpService`] type for every service, and rustapi-rs's `async fn dispatch`, whose future
//! cannot be named); every layer between keeps its inner future in its own, unboxed. The
//! response body is boxed where it is made (`dispatch`, [`AppError`](crate::AppError)) and once
//! more at the top, around tower-http's wrappers.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body::Body;
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use rustapi_core::RustApi;
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder};

use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, OnResponse, TraceLayer};

use crate::REQUEST_ID;
use crate::dispatch::RustApiService;
use crate::faults::{FaultLayer, Faults};
use crate::json_errors::JsonErrorsLayer;

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

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pub(crate) fn boxed<B>(res: http::Response<B>) -> HttpResponse
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    res.map(|body| body.map_err(Into::into).boxed_unsync())
}

/// Records the answer's status on the server span, and logs the answer at INFO (the access
/// log, when `tower_http=info` lets it through).
#[derive(Debug, Clone, Copy)]
struct RecordStatus;

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, res: &http::Response<B>, latency: Duration, span: &tracing::Span) {
        crate::telemetry::record_status(span, res.status());
        DefaultOnResponse::new()
            .level(tracing::Level::INFO)
            .on_response(res, latency, span);
    }
}

/// Builds the [`HttpService`] for a rustapi-rs app: the layers above, configured once.
#[derive(Debug, Clone)]
pub struct Stack {
    body_limit: usize,
    served_by: Option<HeaderValue>,
    faults: Option<Faults>,
    routes: Option<RouteOf>,
}

/// The route template of a path (`/users/7` → `/users/{id}`), `None` when unknown.
pub type RouteOf = fn(&str) -> Option<&'static str>;

/// The route template of `path` in a service of one resource: its `collection` (`/users`) and
/// `item` (`/users/{id}`) routes, and the probes and fault routes every service here serves
/// (`/health`, `/ready`, `/admin/faults`); `None` for a path no route serves. For a service's
/// [`RouteOf`].
pub fn resource_route_of(
    path: &str,
    collection: &'static str,
    item: &'static str,
) -> Option<&'static str> {
    let resource = collection.trim_start_matches('/');
    let mut segments = path.trim_end_matches('/').split('/').skip(1);
    match (segments.next(), segments.next(), segments.next()) {
        (Some("health"), None, _) => Some("/health"),
        (Some("ready"), None, _) => Some("/ready"),
        (Some(first), None, _) if first == resource => Some(collection),
        (Some(first), Some(_), None) if first == resource => Some(item),
        (Some("admin"), Some("faults"), None) => Some("/admin/faults"),
        _ => None,
    }
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
            routes: None,
        }
    }

    /// Names each request's server span after its route template, as `route_of` finds it
    /// (default: after the method alone; never after the raw path).
    pub fn with_route_templates(mut self, route_of: RouteOf) -> Self {
        self.routes = Some(route_of);
        self
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
        let routes = self.routes;
        let service = ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(
                HeaderName::from_static(REQUEST_ID),
                MakeRequestUuid,
            ))
            .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
                REQUEST_ID,
            )))
            .map_response(boxed)
            .layer(crate::telemetry::ServerContextLayer)
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(move |req: &http::Request<B>| {
                        crate::telemetry::server_span(req, routes)
                    })
                    .on_response(RecordStatus),
            )
            .layer(JsonErrorsLayer {
                body_limit: self.body_limit,
                served_by: self.served_by.clone(),
            })
            .layer(RequestBodyLimitLayer::new(self.body_limit))
            .layer(FaultLayer::new(self.faults.clone()))
            .service(inner);
        BoxCloneService::new(service)
    }
}
