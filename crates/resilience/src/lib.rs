//! Tower middleware that keeps clients working when the services behind them fail.
//!
//! | piece | what it does | tower shape |
//! |---|---|---|
//! | [`CircuitBreaker`] | stops calling an endpoint that keeps failing, probes it back | [`CircuitBreakerLayer`] + service |
//! | [`RoundRobin`] | spreads requests over ready endpoints (a gated open breaker is not ready) | service over endpoints |
//! | [`FailFast`] | answers [`NoAvailableEndpoint`] at once when no endpoint is ready | [`FailFastLayer`] + service |
//! | [`HealthCheck`] | while a breaker is open, asks the endpoint itself whether it is back | attached to a [`CircuitBreaker`] |
//! | [`RetryPolicy`] | backoff with jitter, attempt limit, budget, deadline | `tower::retry::Policy` |
//! | [`Hedge`] | races a slow call with a copy to another endpoint, within the budget | [`HedgeLayer`] + service |
//! | [`Timeout`], [`Deadline`] | a limit per attempt, and one for the whole request | [`TimeoutLayer`], [`DeadlineLayer`] |
//! | [`http`] | HTTP failure classes, idempotency, `Retry-After`, a capped body read | feature `http` |
//! | [`http::ResilientClient`] | all of the above over reqwest (with rustls), in a few lines | feature `reqwest` |
//!
//! They work over any tower `Service`, not only HTTP, and compose in this order, outermost
//! first: a deadline bounds the whole request; retry re-sends failed requests through the
//! balancer, so a retry lands on another endpoint; a hedge, where wanted, races a slow call with
//! a copy; round robin picks an endpoint whose breaker admits traffic; each endpoint has its own
//! breaker and attempt timeout.
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
//!         .layer(CircuitBreakerLayer::new(breaker.clone()).named(name).gate_readiness())
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
//! Every layer reads time from tokio's clock, so tests run on a paused clock
//! (`#[tokio::test(start_paused = true)]`) and finish instantly and deterministically; every
//! source of randomness (jitter) can be seeded.

mod abandon;
mod backoff;
pub mod balance;
pub mod circuit_breaker;
mod error;
pub mod hedge;
#[cfg(feature = "http")]
pub mod http;
pub mod retry;
mod striped;
mod sync;
pub mod timeout;

pub use self::backoff::ExponentialBackoff;
pub use self::balance::{
    FailFast, FailFastLayer, NoAvailableEndpoint, RoundRobin, RoundRobinHandle,
};
pub use self::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerConfigBuilder, CircuitBreakerHandle,
    CircuitBreakerLayer, CircuitBreakerMetrics, CircuitOpen, Classify, ErrorsAreFailures,
    HealthCheck, Outcome, SlidingWindow, State, StateChange, TransitionReason, TripReason,
};
pub use self::error::{BoxError, InvalidConfig, find_in_chain};
pub use self::hedge::{Hedge, HedgeConfig, HedgeLayer, HedgeMetrics, HedgePolicy};
pub use self::retry::{
    RetryBudget, RetryDecision, RetryErrors, RetryMetrics, RetryPolicy, RetryRules,
};
pub use self::timeout::{
    Deadline, DeadlineExceeded, DeadlineLayer, Elapsed, Timeout, TimeoutLayer,
};
