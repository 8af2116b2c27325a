//! A live view of every breaker, and operator controls: a tower service over a [`Registry`]
//! (feature `admin`).
//!
//! | request (under the mount point) | answer |
//! |---|---|
//! | `GET /dashboard` | one HTML page (no build step, no external resource) that draws each upstream and endpoint: state as colour, requests/s, error rate, p50/p99 latency, a sparkline of the last minute, and each transition with its reason |
//! | `GET /breakers` | the [`Snapshot`] as JSON |
//! | `GET /breakers/events` | Server-Sent Events: `transition` for each state change as it happens, `snapshot` at once and then each second |
//! | `POST /breakers/{name}/force-open` | the breaker rejects every call until forced closed or reset |
//! | `POST /breakers/{name}/force-closed` | the breaker admits every call and never trips until reset |
//! | `POST /breakers/{name}/reset` | the breaker closes and forgets past failures |
//!
//! `{name}` is the breaker's name, percent-encoded (a [`ResilientClient`]'s are `upstream@url`).
//! Actions answer `{"breaker": name, "state": ...}`, or 404 for a name no upstream has now.
//!
//! **The service does not authenticate. Never expose it unauthenticated:** anyone who reaches
//! it can force every breaker open. Mount it behind your own check (an operator key, mTLS, a
//! loopback-only listener), as the demo gateway does with its operator keys.
//!
//! ```
//! use http_body_util::{BodyExt, Empty};
//! use resilience::admin::{Admin, Registry};
//! use resilience::{CircuitBreakerConfig, CircuitBreakerLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), resilience::BoxError> {
//! let breaker = CircuitBreakerLayer::new(CircuitBreakerConfig::default())
//!     .named("users@http://10.0.0.7")
//!     .layer(service_fn(|_: ()| async { Ok::<_, resilience::BoxError>(()) }))
//!     .handle();
//! let registry = Registry::new();
//! registry.add("users", move || vec![breaker.clone()]);
//! // Serve `/admin/dashboard`, `/admin/breakers`, ... from the host's router, behind its auth.
//! let admin = Admin::new(registry).mounted_at("/admin");
//!
//! let request = http::Request::post("/admin/breakers/users%40http%3A%2F%2F10.0.0.7/force-open")
//!     .body(Empty::<bytes::Bytes>::new())?;
//! let response = admin.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(body, r#"{"breaker":"users@http://10.0.0.7","state":"forced_open"}"#);
//! # Ok(())
//! # }
//! ```
//!
//! # What it costs
//!
//! Nothing on a breaker's call path: rates and error rates come from the counters every breaker
//! keeps anyway, sampled when someone looks (each JSON request, and once a second per open
//! stream). A stream is polled only while its connection is open: no task runs when nobody
//! watches. While a stream is connected each breaker has one state-change listener feeding it;
//! the last stream to end takes them off, and a look alone adds none. Latency percentiles need
//! a clock read at both ends of a call, so they are opt-in: a [`LatencyLayer`] per endpoint,
//! which the [`ResilientClient`] adds to each attempt when this feature is on.
//!
//! # Why it is in this crate
//!
//! The dashboard stays here, behind the `admin` feature, rather than in a `resilience-admin`
//! crate beside it. It reads what only this crate can reach without widening its public API:
//! each breaker's counters and last change, the balancer's per-endpoint load, the retry and
//! hedge counters, and the time-slotted ring its latency histogram shares with the breaker's
//! window. Split out, each of those would become a public accessor to keep stable for one
//! consumer. What it adds to a build that does not ask for it is nothing: no dependency, no
//! code, no cost on any call. Its one page is a string in the binary (no build step, no
//! external resource), and its HTTP surface is a plain tower service the host mounts behind its
//! own authentication, so it ties the crate to no web framework.
//!
#![cfg_attr(
    feature = "reqwest",
    doc = "[`ResilientClient`]: crate::http::ResilientClient"
)]
#![cfg_attr(not(feature = "reqwest"), doc = "[`ResilientClient`]: crate")]

mod latency;
mod registry;
mod snapshot;
mod stream;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use tower_service::Service;

pub use self::latency::{
    Latency, LatencyLayer, LatencyPercentiles, LatencyRecorder, ResponseFuture,
};
pub use self::registry::{Registry, Upstream, WatchedEndpoint};
pub use self::snapshot::{
    BalancingSnapshot, EndpointSnapshot, Snapshot, Transition, UpstreamSnapshot,
};
use self::stream::Events;
pub use self::stream::ResponseBody;

/// The dashboard page: one file, inline CSS and script, no external resource.
const DASHBOARD: &str = include_str!("dashboard.html");

/// The admin service over a [`Registry`]; see the [module docs](self).
///
/// It answers every request at once (its future is `Ready`), never fails, and ignores request
/// bodies. Paths outside its mount point get 404: route only its paths to it
/// ([`serves`](Self::serves) tells which).
#[derive(Debug, Clone)]
pub struct Admin {
    registry: Registry,
    prefix: Arc<str>,
}

/// What an admin request asks for.
#[derive(Debug, PartialEq)]
enum Route {
    Dashboard,
    Snapshot,
    Events,
    Action(String, Action),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    ForceOpen,
    ForceClosed,
    Reset,
}

impl Admin {
    /// Serves `registry` at the root: `/dashboard`, `/breakers`, ... (e.g. under axum's
    /// `nest_service`, which strips the prefix).
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            prefix: Arc::from(""),
        }
    }

    /// Serves under `prefix` instead (`/admin` → `/admin/dashboard`, `/admin/breakers`, ...),
    /// for a host that passes whole paths.
    pub fn mounted_at(mut self, prefix: &str) -> Self {
        self.prefix = Arc::from(prefix.trim_end_matches('/'));
        self
    }

    /// The registry it serves.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether `path` is one of this service's (whatever the method).
    pub fn serves(&self, path: &str) -> bool {
        self.route(path).is_some()
    }

    fn route(&self, path: &str) -> Option<Route> {
        let rest = path.strip_prefix(&*self.prefix)?;
        let segments: Vec<&str> = rest.strip_prefix('/')?.split('/').collect();
        match segments.as_slice() {
            ["dashboard"] => Some(Route::Dashboard),
            ["breakers"] => Some(Route::Snapshot),
            ["breakers", "events"] => Some(Route::Events),
            ["breakers", name, action] => {
                let action = match *action {
                    "force-open" => Action::ForceOpen,
                    "force-closed" => Action::ForceClosed,
                    "reset" => Action::Reset,
                    _ => return None,
                };
                Some(Route::Action(percent_decode(name)?, action))
            }
            _ => None,
        }
    }

    fn answer(&self, method: &Method, path: &str) -> http::Response<ResponseBody> {
        let Some(route) = self.route(path) else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such admin page");
        };
        let wanted = match route {
            Route::Action(..) => Method::POST,
            _ => Method::GET,
        };
        if *method != wanted {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("use {wanted}"),
            );
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_str(wanted.as_str()).unwrap_or(HeaderValue::from_static("GET")),
            );
            return response;
        }
        match route {
            Route::Dashboard => respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                ResponseBody::full(Bytes::from_static(DASHBOARD.as_bytes())),
            ),
            Route::Snapshot => json(StatusCode::OK, &self.registry.snapshot()),
            Route::Events => {
                let mut response = respond(
                    StatusCode::OK,
                    "text/event-stream",
                    ResponseBody::events(Events::new(self.registry.clone())),
                );
                // Proxies (nginx) would otherwise hold the events back.
                response
                    .headers_mut()
                    .insert("x-accel-buffering", HeaderValue::from_static("no"));
                response
            }
            Route::Action(name, action) => {
                let Some(breaker) = self.registry.breaker(&name) else {
                    return error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        &format!("no breaker called {name:?}"),
                    );
                };
                match action {
                    Action::ForceOpen => breaker.force_open(),
                    Action::ForceClosed => breaker.force_closed(),
                    Action::Reset => breaker.reset(),
                }
                tracing::info!(breaker = %name, state = %breaker.state(), "operator action");
                json(
                    StatusCode::OK,
                    &serde_json::json!({"breaker": name, "state": breaker.state().as_str()}),
                )
            }
        }
    }
}

impl<B> Service<http::Request<B>> for Admin {
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        ready(Ok(self.answer(request.method(), request.uri().path())))
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: ResponseBody,
) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if content_type.starts_with("text/html") {
        // Inline script and style only; data only from where the page came from.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
            ),
        );
    }
    response
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> http::Response<ResponseBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    respond(status, "application/json", ResponseBody::full(body))
}

/// The JSON error shape `{"error": {"code", "message"}}`.
fn error(status: StatusCode, code: &str, message: &str) -> http::Response<ResponseBody> {
    json(
        status,
        &serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests;
