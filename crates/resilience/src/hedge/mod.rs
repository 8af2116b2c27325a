//! Hedging: when a call is slower than most, send a copy to another endpoint and take whichever
//! answers first.
//!
//! A hung replica (stopped, swapping, stuck on a lock) accepts connections and answers nothing.
//! Timeouts alone make every call that reaches it wait the whole attempt timeout before a retry
//! goes elsewhere. A hedge waits only as long as a slow call normally takes: the delay is a
//! percentile (default p95) of the latencies seen in the last window, clamped to a floor and a
//! ceiling. So on a healthy upstream about one call in twenty is hedged, and on a hung replica
//! every call is answered by another one a hedge delay later.
//!
//! Why a hedge and not an attempt timeout derived from latency? A timeout kills the slow call;
//! a hedge keeps it and races it. When everything is slow at once (a cold cache, a big list),
//! adaptive timeouts fail calls that would have succeeded and trip breakers on healthy
//! replicas; a hedge only costs an extra request, bounded by the budget.
//!
//! Three rules keep hedging from making an outage worse:
//! - Only requests the [`HedgePolicy`] can copy are hedged (for HTTP, idempotent methods).
//! - Every hedge spends a token of a [`RetryBudget`], shared with the retry
//!   policy, so hedges and retries together stay within one fraction of the traffic.
//! - The hedge goes through the same balancer clone as the original, which never picks the same
//!   endpoint twice in a row while another admits traffic, so the copy goes elsewhere.
//!
//! When the copy wins, the original is dropped and its breaker counts a failure: it lost to a
//! whole second exchange started a hedge delay later. On a hung replica every call ends that
//! way, so its breaker opens after a few calls and it stops getting traffic; on a healthy one,
//! the rare lost race sits between successes and never makes a streak. When the original wins,
//! the copy is dropped and counts for nothing.
//!
//! Put the hedge inside the retry layer and outside the balancer:
//! deadline → retry → **hedge** → balancer → breaker → attempt. Tower's own
//! `tower::hedge::Hedge` is similar in spirit but locks a histogram on every call, has no
//! budget, and cannot tell a breaker that the original lost.
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceExt, service_fn};
//! use resilience::hedge::{Hedge, HedgeConfig};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), resilience::BoxError> {
//! let config = HedgeConfig::builder()
//!     .percentile(0.95)
//!     .min_delay(Duration::from_millis(5))
//!     .build()?;
//! let inner = service_fn(|id: u32| async move { Ok::<_, std::convert::Infallible>(id) });
//! // Hedge every request: a `u32` copies itself.
//! let mut hedged = Hedge::new(inner, |id: &u32| Some(*id), config);
//! assert_eq!(hedged.ready().await?.call(7).await?, 7);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod future;
pub(crate) mod latency;
#[cfg(feature = "serde")]
mod serde;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

pub use self::config::{HedgeConfig, HedgeConfigBuilder};
use self::future::ResponseFuture;
use self::latency::{DelayRule, PeriodHistogram};
use crate::error::BoxError;
use crate::retry::RetryBudget;

/// Decides which requests may be hedged, by copying them.
pub trait HedgePolicy<Request> {
    /// A copy of `request` to send as a hedge, or `None` if it must not be sent twice.
    fn clone_request(&self, request: &Request) -> Option<Request>;

    /// Whether this policy hedges anything at all; when not, the hedge measures nothing and
    /// costs a call only a branch.
    fn enabled(&self) -> bool {
        true
    }
}

impl<F, Request> HedgePolicy<Request> for F
where
    F: Fn(&Request) -> Option<Request>,
{
    fn clone_request(&self, request: &Request) -> Option<Request> {
        self(request)
    }
}

/// No policy: nothing is hedged. Lets one stack type hedge or not, as configured.
impl<P: HedgePolicy<Request>, Request> HedgePolicy<Request> for Option<P> {
    fn clone_request(&self, request: &Request) -> Option<Request> {
        self.as_ref()
            .and_then(|policy| policy.clone_request(request))
    }

    fn enabled(&self) -> bool {
        self.as_ref().is_some_and(HedgePolicy::enabled)
    }
}

/// A service whose slow calls are raced by a copy; see the [module docs](self).
#[derive(Debug)]
pub struct Hedge<S, P> {
    inner: S,
    policy: P,
    shared: Arc<Shared>,
}

/// Wraps services in a [`Hedge`]; each wrapped service learns its own latency.
#[derive(Debug, Clone)]
pub struct HedgeLayer<P> {
    policy: P,
    config: HedgeConfig,
    budget: Option<Arc<RetryBudget>>,
}

/// Counters of a hedge and every clone of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HedgeMetrics {
    /// Copies sent.
    pub hedges: u64,
    /// Copies that answered before the original.
    pub hedges_won: u64,
    /// Copies not sent because the budget was spent.
    pub budget_exhausted: u64,
    /// The current hedge delay, if the last window saw enough calls to set one.
    pub delay: Option<Duration>,
}

/// What every clone of one hedge shares: the latency windows, the current delay, the budget.
pub(crate) struct Shared {
    rule: DelayRule,
    window: Duration,
    epoch: Instant,
    windows: [PeriodHistogram; 2],
    /// The number of the window being recorded into (time since `epoch` / `window`).
    current: AtomicU64,
    /// The hedge delay in nanoseconds; 0 while hedging is off.
    delay_nanos: AtomicU64,
    rotating: Mutex<()>,
    budget: Option<Arc<RetryBudget>>,
    hedges: AtomicU64,
    hedges_won: AtomicU64,
    budget_exhausted: AtomicU64,
}

impl<S, P> Hedge<S, P> {
    /// Hedges calls to `inner` that `policy` can copy, with no budget (see
    /// [`with_budget`](Self::with_budget)).
    pub fn new(inner: S, policy: P, config: HedgeConfig) -> Self {
        Self {
            inner,
            policy,
            shared: Arc::new(Shared::new(&config, None)),
        }
    }

    /// Spends a token of `budget` on every hedge; a hedge the budget refuses is not sent.
    /// Share the retry policy's budget ([`RetryPolicy::budget`](crate::retry::RetryPolicy::budget)):
    /// the retry policy counts the requests that earn tokens.
    pub fn with_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        let shared = Shared::new_like(&self.shared, Some(budget));
        self.shared = Arc::new(shared);
        self
    }

    /// The counters, shared with every clone.
    pub fn metrics(&self) -> HedgeMetrics {
        self.shared.metrics()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P: Clone> Clone for Hedge<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S, P, Request> Service<Request> for Hedge<S, P>
where
    S: Service<Request> + Clone,
    S::Error: Into<BoxError>,
    P: HedgePolicy<Request>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Request>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Copy only while hedging is on: a quiet or unmeasured upstream pays nothing.
        if !self.policy.enabled() {
            return ResponseFuture::new(self.inner.call(request), None, None);
        }
        let spare = self
            .shared
            .delay()
            .and_then(|_| self.policy.clone_request(&request))
            .map(|copy| (self.inner.clone(), copy));
        let primary = self.inner.call(request);
        ResponseFuture::new(primary, spare, Some(Arc::clone(&self.shared)))
    }
}

impl<P> HedgeLayer<P> {
    /// Hedges the requests `policy` can copy, as `config` says.
    pub fn new(policy: P, config: HedgeConfig) -> Self {
        Self {
            policy,
            config,
            budget: None,
        }
    }

    /// Spends a token of `budget` on every hedge (see [`Hedge::with_budget`]).
    pub fn with_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }
}

impl<S, P: Clone> Layer<S> for HedgeLayer<P> {
    type Service = Hedge<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge {
            inner,
            policy: self.policy.clone(),
            shared: Arc::new(Shared::new(&self.config, self.budget.clone())),
        }
    }
}

impl Shared {
    fn new(config: &HedgeConfig, budget: Option<Arc<RetryBudget>>) -> Self {
        Self {
            rule: config.rule,
            window: config.window,
            epoch: Instant::now(),
            windows: [PeriodHistogram::new(), PeriodHistogram::new()],
            current: AtomicU64::new(0),
            delay_nanos: AtomicU64::new(0),
            rotating: Mutex::new(()),
            budget,
            hedges: AtomicU64::new(0),
            hedges_won: AtomicU64::new(0),
            budget_exhausted: AtomicU64::new(0),
        }
    }

    fn new_like(other: &Self, budget: Option<Arc<RetryBudget>>) -> Self {
        Self {
            budget,
            ..Self::new(
                &HedgeConfig {
                    rule: other.rule,
                    window: other.window,
                },
                None,
            )
        }
    }

    /// The current hedge delay; `None` while hedging is off.
    pub(crate) fn delay(&self) -> Option<Duration> {
        match self.delay_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Counts the latency of a call that the original attempt answered.
    pub(crate) fn record(&self, started: Instant) {
        let now = Instant::now();
        let window = self.window_number(now);
        let current = self.current.load(Ordering::Acquire);
        if window != current {
            self.rotate(current, window);
        }
        self.windows[(window % 2) as usize].record(now.saturating_duration_since(started));
    }

    fn window_number(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(elapsed / self.window.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// Moves from window `from` to window `to`: the delay is set from `from` if it is the
    /// window just before, and `to`'s counts (two windows old) are cleared.
    fn rotate(&self, from: u64, to: u64) {
        let Ok(_rotating) = self.rotating.try_lock() else {
            // Another thread is rotating; recording into the new window meanwhile is harmless.
            return;
        };
        if self.current.load(Ordering::Acquire) != from {
            return;
        }
        let delay = if to == from + 1 {
            self.rule.delay(&self.windows[(from % 2) as usize].counts())
        } else {
            // An idle gap: what was measured before it says nothing about now.
            None
        };
        let nanos = delay.map_or(0, |delay| {
            u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.delay_nanos.store(nanos, Ordering::Relaxed);
        self.windows[(to % 2) as usize].clear();
        if to != from + 1 {
            self.windows[(from % 2) as usize].clear();
        }
        self.current.store(to, Ordering::Release);
    }

    /// Takes a budget token for one hedge, if the budget allows.
    pub(crate) fn try_spend(&self) -> bool {
        let granted = self
            .budget
            .as_ref()
            .is_none_or(|budget| budget.try_withdraw());
        if granted {
            self.hedges.fetch_add(1, Ordering::Relaxed);
        } else {
            self.budget_exhausted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "resilience::hedge", "not hedging: the retry budget is spent");
        }
        granted
    }

    pub(crate) fn count_win(&self) {
        self.hedges_won.fetch_add(1, Ordering::Relaxed);
    }

    fn metrics(&self) -> HedgeMetrics {
        HedgeMetrics {
            hedges: self.hedges.load(Ordering::Relaxed),
            hedges_won: self.hedges_won.load(Ordering::Relaxed),
            budget_exhausted: self.budget_exhausted.load(Ordering::Relaxed),
            delay: self.delay(),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("rule", &self.rule)
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
