//! The layers of a [`ResilientClient`](super::ResilientClient), as types and as the one
//! function that puts them together.
//!
//! ```text
//! deadline → retry → hedge → fail fast → least loaded ─┬─ rebase → [attempt span →] breaker → [latency →] attempt timeout → reqwest + body
//!                                                      └─ (one such stack per endpoint)
//! ```

use std::sync::Arc;

use tower::retry::Retry;

use super::attempt::{Rebase, SendAttempt};
use super::endpoints::ClientEndpoint;
use crate::balance::{FailFast, LeastLoaded, LeastLoadedConfig};
use crate::circuit_breaker::CircuitBreaker;
use crate::error::InvalidConfig;
use crate::hedge::{Hedge, HedgeConfig};
use crate::http::{HttpClassifier, HttpRetryRules, IdempotentHedge};
use crate::retry::{RetryPolicy, RetryPolicyBuilder};
use crate::timeout::{Deadline, Timeout};

/// One endpoint: rebase → [attempt span →] breaker → [latency →] attempt timeout → reqwest and
/// the body.
pub(super) type Endpoint = Rebase<Traced<CircuitBreaker<TimedAttempt, HttpClassifier>>>;
/// One attempt; with the `admin` feature, timed for the dashboard (two clock reads per attempt).
#[cfg(feature = "admin")]
type TimedAttempt = crate::admin::Latency<Timeout<SendAttempt>>;
#[cfg(not(feature = "admin"))]
type TimedAttempt = Timeout<SendAttempt>;
#[cfg(feature = "opentelemetry")]
type Traced<S> = crate::http::trace::AttemptSpan<S>;
#[cfg(not(feature = "opentelemetry"))]
type Traced<S> = S;
pub(super) type Balancer = LeastLoaded<ClientEndpoint, Endpoint, HttpClassifier>;
pub(super) type Hedged = Hedge<FailFast<Balancer>, Option<IdempotentHedge>>;
pub(super) type Stack = Deadline<Retry<RetryPolicy<HttpRetryRules>, Hedged>>;

/// What the client keeps of the stack it built: the stack, and the pieces it reports on.
pub(super) struct Assembled {
    pub(super) stack: Stack,
    pub(super) balancer: Balancer,
    pub(super) policy: RetryPolicy<HttpRetryRules>,
    pub(super) hedge: Hedged,
}

/// The stack over `endpoints`: the balancer weighing them as `balancing` says, retries as
/// `retry` says (moving at once to another endpoint while one is healthy), hedges as `hedge`
/// says (none when `None`) within the retry budget, all under `deadline`.
pub(super) fn assemble(
    endpoints: Vec<(ClientEndpoint, Endpoint)>,
    balancing: LeastLoadedConfig,
    retry: RetryPolicyBuilder<HttpRetryRules>,
    hedge: Option<HedgeConfig>,
    deadline: std::time::Duration,
) -> Result<Assembled, InvalidConfig> {
    let balancer = LeastLoaded::with_config(endpoints, balancing).with_classifier(HttpClassifier);
    let policy = retry.alternatives(balancer.handle()).build()?;
    let copies = hedge.is_some().then_some(IdempotentHedge);
    let mut hedged = Hedge::new(
        FailFast::new(balancer.clone()),
        copies,
        hedge.unwrap_or_default(),
    );
    if let Some(budget) = policy.budget() {
        hedged = hedged.with_budget(Arc::clone(budget));
    }
    let stack = Deadline::new(Retry::new(policy.clone(), hedged.clone()), deadline);
    Ok(Assembled {
        stack,
        balancer,
        policy,
        hedge: hedged,
    })
}
