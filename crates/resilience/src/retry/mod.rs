//! Retrying failed requests without turning an outage into a flood.
//!
//! [`RetryPolicy`] is a `tower::retry::Policy`: use it with tower's
//! [`RetryLayer`](tower::retry::RetryLayer). Behind a [`RoundRobin`](crate::balance::RoundRobin), each
//! retry is a fresh pick, so it lands on another endpoint.
//!
//! Why a budget and not only a maximum number of attempts? Three attempts per request triple
//! the load on a service that is already failing. A [`RetryBudget`] lets retries be at most a
//! fraction of recent requests (plus a small floor so a quiet client can still retry), so during
//! a total outage the extra load is bounded by that fraction, not by the attempt count.
//!
//! What is worth retrying is a [`RetryRules`]: [`RetryErrors`] retries any error of the service
//! behind it, and with the `http` feature [`HttpRetryRules`] knows
//! about idempotent methods, `Idempotency-Key` and `Retry-After`. Neither retries a rejection
//! made by this crate's own layers ([`CircuitOpen`](crate::circuit_breaker::CircuitOpen),
//! [`NoAvailableEndpoint`](crate::balance::NoAvailableEndpoint)): no upstream failed, and retrying a local
//! "no" only spins.
//!
#![cfg_attr(
    feature = "http",
    doc = "[`HttpRetryRules`]: crate::http::HttpRetryRules"
)]
#![cfg_attr(not(feature = "http"), doc = "[`HttpRetryRules`]: crate")]

mod backoff;
mod budget;
#[cfg(feature = "serde")]
mod config;
mod policy;
mod rules;

pub use self::backoff::Backoff;
pub use self::budget::RetryBudget;
#[cfg(feature = "serde")]
pub use self::config::{RetryBudgetConfig, RetryConfig};
pub use self::policy::{RetryMetrics, RetryPolicy, RetryPolicyBuilder};
pub use self::rules::{RetryDecision, RetryErrors, RetryRules, is_local_rejection};

#[cfg(test)]
mod tests;
