//! HTTP: what a failure is, what may be retried, and a whole resilient client in a few lines.
//!
//! - [`HttpClassifier`]: for the breaker, 5xx answers and errors (including timeouts) are
//!   failures; 4xx are the client's fault and are not.
//! - [`HttpRetryRules`]: retries idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE);
//!   POST and PATCH only with an `Idempotency-Key` header or when the connection was refused (the
//!   request provably never left); honours `Retry-After`.
//! - [`HttpEndpoint`]: a `reqwest::Client` bound to one base URL, so the same request can be
//!   sent to whichever endpoint the balancer picks.
//! - [`ResilientClient`]: the full stack over a list of endpoint URLs.

mod body;
mod classify;
mod client;
mod endpoint;
mod retry;

pub use self::body::{BodyFailed, BodyTooLarge, ReadBody};
pub use self::classify::HttpClassifier;
pub use self::client::{ResilientClient, ResilientClientBuilder};
pub use self::endpoint::{DEFAULT_MAX_BODY, HttpEndpoint, ResponseFuture as EndpointFuture};
pub use self::retry::{HttpRetryRules, parse_retry_after};
