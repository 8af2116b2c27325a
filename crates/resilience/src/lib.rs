//! Tower middleware that keeps clients working when the services behind them fail.
//!
//! | piece | what it does | tower shape |
//! |---|---|---|
//! | [`CircuitBreaker`] | stops calling an endpoint that keeps failing, probes it back | [`CircuitBreakerLayer`] + service |
//! | [`balance::LeastLoaded`] | weighs ready endpoints by latency and calls outstanding; slow start; outlier ejection (the default in [`http::ResilientClient`]) | service over endpoints |
//! | [`RoundRobin`] | spreads requests over ready endpoints in strict turn (an open breaker is not ready) | service over endpoints |
//! | [`FailFast`] | answers [`NoAvailableEndpoint`] at once when no endpoint is ready | [`FailFastLayer`] + service |
//! | [`HealthCheck`] | while a breaker is open, asks the endpoint itself whether it is back | attached to a [`CircuitBreaker`] |
//! | [`RetryPolicy`] | backoff with jitter, attempt limit, budget, deadline | `tower::retry::Policy` |
//! | [`Hedge`] | races a slow call with a copy to another endpoint, within the budget | [`HedgeLayer`] + service |
//! | [`Timeout`], [`Deadline`] | a limit per attempt, and one for the whole request | [`TimeoutLayer`], [`DeadlineLayer`] |
//! | [`http`] | HTTP failure classes, idempotency, `Retry-After`, a capped body read | feature `http` |
//! | [`http::ResilientClient`] | all of the above over reqwest (with rustls), in a few lines | feature `reqwest` |
//! | [`admin`] | a live dashboard of every breaker (JSON, Server-Sent Events, one HTML page) with force open / closed / reset | feature `admin` |
//! | [`http::trace`] | an OpenTelemetry client span per attempt and a W3C `traceparent` naming it (inside `ResilientClient` too) | feature `opentelemetry`, [`http::trace::AttemptSpanLayer`] + service |
//! | configuration files | breaker, hedge, retry and client settings from TOML or JSON, checked by the same builders | feature `serde` |
//! | `sim` | a simulated fleet under a seeded load on the paused clock, to check a configuration against a gray failure | feature `sim` |
//!
//! They work over any tower `Service`, not only HTTP, and compose in this order, outermost
//! first: a deadline bounds the whole request; retry re-sends failed requests through the
//! balancer (through this crate's balancers, which remember where each clone's last call went,
//! a retry lands on another endpoint; tower's p2c may pick the same one again); a hedge, where
//! wanted, races a slow call with a copy; the balancer picks an endpoint whose breaker is ready
//! (a breaker is not ready while it admits no call); each endpoint has its own breaker and
//! attempt timeout.
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt, retry::RetryLayer, service_fn};
//! use resilience::{
//!     CircuitBreakerConfig, CircuitBreakerLayer, DeadlineLayer, FailFastLayer, RetryPolicy,
//!     RoundRobin, State, TimeoutLayer,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), resilience::BoxError> {
//! let breaker = CircuitBreakerConfig::builder().consecutive_failures(3).build()?;
//! // Two endpoints: "a" is down, "b" answers.
//! let endpoints = ["a", "b"].map(|name| {
//!     let endpoint = ServiceBuilder::new()
//!         // Under a balancer, a breaker says "not now" through readiness.
//!         .layer(CircuitBreakerLayer::new(breaker.clone()).named(name))
//!         .layer(TimeoutLayer::new(Duration::from_millis(500)))
//!         .service(service_fn(move |id: u32| async move {
//!             match name {
//!                 "a" => Err("connection refused"),
//!                 _ => Ok(format!("user {id} from {name}")),
//!             }
//!         }));
//!     (name, endpoint)
//! });
//! let breaker_a = endpoints[0].1.handle();
//!
//! let retry = RetryPolicy::builder().max_attempts(3).deadline(Duration::from_secs(2)).build()?;
//! let client = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(2)))
//!     .layer(RetryLayer::new(retry))
//!     // Every breaker open: answer at once rather than wait for one to admit a probe.
//!     .layer(FailFastLayer::new())
//!     .service(RoundRobin::new(endpoints));
//!
//! for id in 0..10 {
//!     // Every request succeeds: the ones sent to "a" are retried on "b".
//!     let answer = client.clone().oneshot(id).await?;
//!     assert_eq!(answer, format!("user {id} from b"));
//! }
//! // After three failures in a row, "a"'s breaker opened and it gets no more traffic.
//! assert_eq!(breaker_a.state(), State::Open);
//! # Ok(())
//! # }
//! ```
//!
//! # Under tower's p2c, and over hyper-util
//!
//! The breakers are plain tower services, so any readiness-based balancer routes around an open
//! one. Under tower's power-of-two-choices balancer (whole program: `examples/p2c.rs`; with
//! retry, which needs tower's `Buffer` because `Balance` is not `Clone`, `FailFast` goes inside
//! the `Buffer`, directly over the balancer: `examples/p2c_retry.rs`):
//!
//! ```
//! use tower::balance::p2c::Balance;
//! use tower::discover::ServiceList;
//! use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
//! use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
//! use resilience::{BoxError, CircuitBreakerConfig, CircuitBreakerLayer, FailFastLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let config = CircuitBreakerConfig::builder().consecutive_failures(3).build()?;
//! let endpoints: Vec<_> = ["a", "b", "c"]
//!     .into_iter()
//!     .map(|name| {
//!         CircuitBreakerLayer::new(config.clone()).named(name).layer(
//!             service_fn(move |id: u32| async move { Ok::<_, BoxError>(format!("{id} from {name}")) }),
//!         )
//!     })
//!     .collect();
//! let discover =
//!     PendingRequestsDiscover::new(ServiceList::new(endpoints), CompleteOnResponse::default());
//! let client = ServiceBuilder::new()
//!     .layer(FailFastLayer::new())
//!     .service(Balance::new(discover));
//! let answer = client.oneshot(7).await?;
//! assert!(answer.starts_with("7 from "));
//! # Ok(())
//! # }
//! ```
//!
//! With the `http` feature the same stack runs over any client whose requests are
//! `http::Request<B>`, such as hyper-util's, with no reqwest: [`http::HttpRetryRules`] decide
//! what to retry and [`http::HttpClassifier`] what a breaker counts as a failure. The endpoint
//! service puts its address into each request and reads the whole body with [`http::ReadBody`]
//! (whole program, with two local servers one of which stops: `examples/hyper_util.rs`):
//!
//! ```no_run
//! # #[cfg(feature = "http")]
//! # mod with_http {
//! # use bytes::Bytes;
//! # use futures::future::{BoxFuture, FutureExt};
//! # use http_body_util::Full;
//! # use hyper_util::client::legacy::{Client, connect::HttpConnector};
//! # use resilience::BoxError;
//! # use tower::Service;
//! # type Request = http::Request<Full<Bytes>>;
//! # type Response = http::Response<Bytes>;
//! # fn endpoint(client: Client<HttpConnector, Full<Bytes>>, address: &'static str)
//! #     -> impl Service<Request, Response = Response, Error = BoxError, Future = BoxFuture<'static, Result<Response, BoxError>>> + Clone {
//! #     tower::service_fn(move |mut request: Request| {
//! #         let client = client.clone();
//! #         async move {
//! #             *request.uri_mut() = format!("http://{address}{}", request.uri().path()).parse()?;
//! #             let (parts, body) = client.request(request).await?.into_parts();
//! #             let body = resilience::http::ReadBody::new(body, 64 * 1024).await?;
//! #             Ok(http::Response::from_parts(parts, body))
//! #         }
//! #         .boxed()
//! #     })
//! # }
//! use std::time::Duration;
//! use hyper_util::rt::TokioExecutor;
//! use resilience::http::{HttpClassifier, HttpRetryRules};
//! use resilience::{
//!     CircuitBreakerConfig, CircuitBreakerLayer, DeadlineLayer, FailFastLayer, RetryPolicy,
//!     RoundRobin, TimeoutLayer,
//! };
//! use tower::{ServiceBuilder, ServiceExt, retry::RetryLayer};
//!
//! # pub async fn run() -> Result<(), BoxError> {
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let breaker = CircuitBreakerConfig::builder().consecutive_failures(3).build()?;
//! let endpoints = ["127.0.0.1:8081", "127.0.0.1:8082"].map(|address| {
//!     let endpoint = ServiceBuilder::new()
//!         .layer(CircuitBreakerLayer::new(breaker.clone()).with_classifier(HttpClassifier))
//!         .layer(TimeoutLayer::new(Duration::from_secs(1)))
//!         .service(endpoint(client.clone(), address)); // the client, aimed at `address`
//!     (address, endpoint)
//! });
//! let retry = RetryPolicy::builder().rules(HttpRetryRules).deadline(Duration::from_secs(3)).build()?;
//! let stack = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(3)))
//!     .layer(RetryLayer::new(retry))
//!     .layer(FailFastLayer::new())
//!     .service(RoundRobin::new(endpoints));
//! let request = http::Request::get("/users/1").body(Full::new(Bytes::new()))?;
//! let response = stack.oneshot(request).await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! # }
//! ```
//!
//! Every layer reads time from tokio's clock, so tests run on a paused clock
//! (`#[tokio::test(start_paused = true)]`) and finish instantly and deterministically; every
//! source of randomness (jitter) can be seeded.
//!
// The links above to items behind a feature go to the item when the feature is on and to this
// page when it is off, so `cargo doc` is clean with any feature set.
#![cfg_attr(
    feature = "http",
    doc = "[`http`]: http\n[`http::HttpRetryRules`]: http::HttpRetryRules\n[`http::HttpClassifier`]: http::HttpClassifier\n[`http::ReadBody`]: http::ReadBody"
)]
#![cfg_attr(
    not(feature = "http"),
    doc = "[`http`]: crate\n[`http::HttpRetryRules`]: crate\n[`http::HttpClassifier`]: crate\n[`http::ReadBody`]: crate"
)]
#![cfg_attr(
    feature = "reqwest",
    doc = "[`http::ResilientClient`]: http::ResilientClient"
)]
#![cfg_attr(not(feature = "reqwest"), doc = "[`http::ResilientClient`]: crate")]
#![cfg_attr(feature = "admin", doc = "[`admin`]: admin")]
#![cfg_attr(not(feature = "admin"), doc = "[`admin`]: crate")]
#![cfg_attr(
    feature = "opentelemetry",
    doc = "[`http::trace`]: http::trace\n[`http::trace::AttemptSpanLayer`]: http::trace::AttemptSpanLayer"
)]
#![cfg_attr(
    not(feature = "opentelemetry"),
    doc = "[`http::trace`]: crate\n[`http::trace::AttemptSpanLayer`]: crate"
)]
// On docs.rs (`--cfg docsrs`, nightly), each item shows the features it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's examples, compiled and run as doctests. They use `reqwest`, `admin` and
// `opentelemetry` (all on in `cargo test --workspace`); with fewer features there is nothing
// to compile them against.
#[cfg(all(
    doctest,
    feature = "reqwest",
    feature = "admin",
    feature = "opentelemetry"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "admin")]
pub mod admin;
mod backoff;
pub mod balance;
mod call_scope;
pub mod circuit_breaker;
#[cfg(feature = "serde")]
mod config_file;
mod error;
pub mod hedge;
#[cfg(feature = "http")]
pub mod http;
pub mod retry;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod striped;
mod striped_arc;
mod sync;
pub mod timeout;
mod window;

pub use self::backoff::ExponentialBackoff;
pub use self::balance::{
    FailFast, FailFastLayer, NoAvailableEndpoint, RoundRobin, RoundRobinHandle,
};
pub use self::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerConfigBuilder, CircuitBreakerHandle,
    CircuitBreakerLayer, CircuitBreakerMetrics, CircuitOpen, Classify, ErrorsAreFailures,
    HealthCheck, Outcome, SlidingWindow, State, StateChange, TransitionReason, TripReason,
};
pub use self::error::{BoxError, InvalidConfig, chain_text, find_in_chain};
pub use self::hedge::{Hedge, HedgeConfig, HedgeLayer, HedgeMetrics, HedgePolicy};
pub use self::retry::{
    RetryBudget, RetryDecision, RetryErrors, RetryMetrics, RetryPolicy, RetryRules,
};
pub use self::timeout::{
    Deadline, DeadlineExceeded, DeadlineLayer, Elapsed, Timeout, TimeoutLayer,
};
