//! HTTP: what a failure is, what may be retried or hedged, and reading a body inside its attempt,
//! for any client whose requests and responses are `http` types; and, with the `reqwest`
//! feature, a whole resilient client in a few lines.
//!
//! - [`HttpClassifier`]: for the breaker, 5xx answers and errors (timeouts, broken bodies) are
//!   failures; 4xx are the client's fault and are not.
//! - [`HttpRetryRules`]: retries idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE);
//!   POST and PATCH only with an `Idempotency-Key` header; a request whose connection was refused
//!   (it provably never left) at once, whatever its method; honours `Retry-After`.
//! - [`IdempotentHedge`]: the [`HedgePolicy`](crate::hedge::HedgePolicy) that races copies of
//!   idempotent requests only.
//! - [`ReadBody`]: reads a body under a cap, so an attempt covers the whole exchange.
//! - [`HttpRequest`]: what the rules need of a request; implemented for `http::Request<B>` (any
//!   cloneable body: hyper-util, axum, tonic) and, with `reqwest`, for `reqwest::Request`.
//! - With `reqwest`: [`HttpEndpoint`], a `reqwest::Client` bound to one base URL, and
//!   [`ResilientClient`], the full stack over a list of endpoint URLs.
//! - With `opentelemetry`: [`trace`], one client span per attempt (retries and hedges
//!   included, with `http.request.resend_count` from [`ResendCount`]) and a W3C `traceparent`
//!   naming it on the request; `ResilientClient` puts it on every endpoint.
//!
#![cfg_attr(
    feature = "reqwest",
    doc = "[`HttpEndpoint`]: HttpEndpoint\n[`ResilientClient`]: ResilientClient"
)]
#![cfg_attr(
    not(feature = "reqwest"),
    doc = "[`HttpEndpoint`]: crate\n[`ResilientClient`]: crate"
)]
#![cfg_attr(feature = "opentelemetry", doc = "[`trace`]: trace")]
#![cfg_attr(not(feature = "opentelemetry"), doc = "[`trace`]: crate")]

mod body;
mod classify;
mod hedge;
mod request;
#[cfg(feature = "reqwest")]
mod reqwest;
mod retry;
#[cfg(feature = "opentelemetry")]
pub mod trace;

pub use self::body::{BodyFailed, BodyTooLarge, ReadBody};
pub use self::classify::HttpClassifier;
pub use self::hedge::IdempotentHedge;
pub use self::request::{HttpRequest, ResendCount};
#[cfg(all(feature = "reqwest", feature = "serde"))]
pub use self::reqwest::ResilientClientConfig;
#[cfg(feature = "reqwest")]
pub use self::reqwest::{
    AnsweredBy, DEFAULT_MAX_BODY, EndpointFuture, HttpEndpoint, ResilientClient,
    ResilientClientBuilder, ResponseFuture, UpstreamUnavailable,
};
pub use self::retry::{HttpRetryRules, parse_retry_after};
