//! The retry policy: rules, backoff, attempts, budget and deadline, combined.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;
use tower::retry::Policy;

use super::backoff::Backoff;
use super::{RetryBudget, RetryDecision, RetryErrors, RetryRules};
use crate::backoff::ExponentialBackoff;
use crate::balance::Alternatives;
use crate::error::InvalidConfig;
use crate::striped_arc::StripedArc;

/// The jitter of the default backoff, kept by a backoff given without one of its own.
const DEFAULT_JITTER: f64 = 0.5;

/// A `tower::retry::Policy` with exponential backoff and jitter, a maximum number of attempts,
/// a [`RetryBudget`] and an optional overall deadline.
///
/// ```
/// use std::time::Duration;
/// use tower::{ServiceBuilder, retry::RetryLayer};
/// use resilience::{DeadlineLayer, ExponentialBackoff, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(3)
///     .backoff(ExponentialBackoff::new(Duration::from_millis(20), Duration::from_secs(1)).with_jitter(0.5))
///     .deadline(Duration::from_secs(3))
///     .build()?;
/// let stack = ServiceBuilder::new()
///     .layer(DeadlineLayer::new(Duration::from_secs(3)))
///     .layer(RetryLayer::new(policy));
/// # let _ = stack;
/// # Ok::<(), resilience::InvalidConfig>(())
/// ```
///
/// Tower's `Retry` clones the policy for every request; a clone carries that request's attempt
/// count and start time, and shares the budget, the jitter source and the counters.
#[derive(Clone, Debug)]
pub struct RetryPolicy<R = RetryErrors> {
    rules: R,
    /// The settings and the counters: behind the shared reference, since tower's `Retry` copies
    /// the policy into every response future, and only a retry decision reads the settings.
    shared: StripedArc<Shared>,
    /// Retries made so far for this request.
    retries: u32,
    /// When this request started, if a deadline is set.
    started: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    max_attempts: u32,
    backoff: ExponentialBackoff,
    deadline: Option<Duration>,
    min_attempt_time: Duration,
    retry_after_cap: Duration,
}

/// Without a deadline, a server may ask for up to this long a wait (`Retry-After`).
const RETRY_AFTER_CAP: Duration = Duration::from_secs(5);

struct Shared {
    settings: Settings,
    alternatives: Option<Arc<dyn Alternatives>>,
    budget: Option<Arc<RetryBudget>>,
    rng: Mutex<SmallRng>,
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
    out_of_time: AtomicU64,
    not_cloneable: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.settings)
            .field("budget", &self.budget)
            .field("alternatives", &self.alternatives.is_some())
            .finish_non_exhaustive()
    }
}

/// Counters of a policy and every clone of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryMetrics {
    /// Retries sent.
    pub retries: u64,
    /// Retries not sent because the budget was spent.
    pub budget_exhausted: u64,
    /// Retries not sent because the deadline would have passed first.
    pub out_of_time: u64,
    /// Requests sent once because their body could not be copied.
    pub not_cloneable: u64,
}

impl RetryPolicy {
    /// Starts from the defaults: 3 attempts, backoff from 50 ms doubling to 2 s with 50 %
    /// jitter, the default [`RetryBudget`], no deadline, retrying any error, and a
    /// `Retry-After` cap of 5 s (half the deadline, when one is set).
    pub fn builder() -> RetryPolicyBuilder<RetryErrors> {
        RetryPolicyBuilder {
            rules: RetryErrors,
            settings: Settings {
                max_attempts: 3,
                backoff: ExponentialBackoff::new(Duration::from_millis(50), Duration::from_secs(2))
                    .with_jitter(DEFAULT_JITTER),
                deadline: None,
                min_attempt_time: Duration::ZERO,
                retry_after_cap: RETRY_AFTER_CAP,
            },
            retry_after_cap: None,
            budget: Some(Arc::new(RetryBudget::default())),
            seed: None,
            alternatives: None,
        }
    }
}

impl<R> RetryPolicy<R> {
    /// The counters shared by this policy and its clones.
    pub fn metrics(&self) -> RetryMetrics {
        RetryMetrics {
            retries: self.shared.retries.load(Ordering::Relaxed),
            budget_exhausted: self.shared.budget_exhausted.load(Ordering::Relaxed),
            out_of_time: self.shared.out_of_time.load(Ordering::Relaxed),
            not_cloneable: self.shared.not_cloneable.load(Ordering::Relaxed),
        }
    }

    /// The rules deciding what is retried.
    pub fn rules(&self) -> &R {
        &self.rules
    }

    /// The budget retries draw on, to share it with another layer that sends extra requests
    /// (a [`Hedge`](crate::hedge::Hedge)), so that together they stay within it.
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.shared.budget.as_ref()
    }

    /// The longest `Retry-After` wait this policy honours.
    pub fn retry_after_cap(&self) -> Duration {
        self.shared.settings.retry_after_cap
    }

    /// Counts a retry about to go out, here and in the shared metrics, and returns its resend
    /// count (1 for the first retry): the one place both retry paths keep their books.
    fn count_resend(&mut self) -> u32 {
        self.retries += 1;
        self.shared.retries.fetch_add(1, Ordering::Relaxed);
        self.retries
    }

    fn next_backoff(&self) -> Duration {
        // Locked only on the retry path; a clone per request cannot own the jitter source, or
        // every request would draw the same "random" delays.
        let mut rng = self
            .shared
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.shared.settings.backoff.delay(self.retries, &mut *rng)
    }
}

/// Builds a [`RetryPolicy`]; see [`RetryPolicy::builder`].
pub struct RetryPolicyBuilder<R> {
    rules: R,
    settings: Settings,
    retry_after_cap: Option<Duration>,
    budget: Option<Arc<RetryBudget>>,
    seed: Option<u64>,
    alternatives: Option<Arc<dyn Alternatives>>,
}

impl<R> std::fmt::Debug for RetryPolicyBuilder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicyBuilder")
            .field("settings", &self.settings)
            .field("alternatives", &self.alternatives.is_some())
            .finish_non_exhaustive()
    }
}

impl<R> RetryPolicyBuilder<R> {
    /// Decides what to retry with `rules`.
    pub fn rules<R2>(self, rules: R2) -> RetryPolicyBuilder<R2> {
        RetryPolicyBuilder {
            rules,
            settings: self.settings,
            retry_after_cap: self.retry_after_cap,
            budget: self.budget,
            seed: self.seed,
            alternatives: self.alternatives,
        }
    }

    /// After a failure of the endpoint's own (an error, a timeout, a 5xx), retries at once,
    /// without backoff, while `alternatives` knows an endpoint that can take the retry (the
    /// balancer sends it there, not back); backs off as usual when there is none. Within the
    /// budget either way, and a server's `Retry-After` is still honoured.
    ///
    /// ```
    /// use resilience::RetryPolicy;
    /// use resilience::balance::LeastLoaded;
    /// use tower::service_fn;
    ///
    /// let balancer = LeastLoaded::new([("a", service_fn(|_: ()| async { Ok::<_, resilience::BoxError>(()) }))]);
    /// let policy = RetryPolicy::builder().alternatives(balancer.handle()).build()?;
    /// # let _ = policy;
    /// # Ok::<(), resilience::InvalidConfig>(())
    /// ```
    pub fn alternatives(mut self, alternatives: impl Alternatives) -> Self {
        self.alternatives = Some(Arc::new(alternatives));
        self
    }

    /// At most `n` attempts per request, the first included (1 disables retries).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.settings.max_attempts = n;
        self
    }

    /// The delay before each retry (default: 50 ms doubling to 2 s, 50 % jitter). A schedule
    /// that chose no jitter ([`ExponentialBackoff::new`] alone) gets the default 50 %; pass
    /// `.with_jitter(0.0)` for none.
    pub fn backoff(mut self, backoff: ExponentialBackoff) -> Self {
        self.settings.backoff = backoff.or_jitter(DEFAULT_JITTER);
        self
    }

    /// Limits retries with `budget`; pass an `Arc` to share one budget between several
    /// policies or with a [`Hedge`](crate::hedge::Hedge).
    pub fn budget(mut self, budget: impl Into<Arc<RetryBudget>>) -> Self {
        self.budget = Some(budget.into());
        self
    }

    /// Retries without a budget (only the attempt limit bounds them).
    pub fn without_budget(mut self) -> Self {
        self.budget = None;
        self
    }

    /// No retry starts unless its backoff (plus [`min_attempt_time`](Self::min_attempt_time))
    /// ends before `deadline` after the request started. Pair it with a
    /// [`DeadlineLayer`](crate::timeout::DeadlineLayer) of the same length outside the retry layer.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.settings.deadline = Some(deadline);
        self
    }

    /// With a deadline: a retry is only worth starting if at least this much time is left for
    /// it after its backoff (default zero).
    pub fn min_attempt_time(mut self, time: Duration) -> Self {
        self.settings.min_attempt_time = time;
        self
    }

    /// A server asking to wait longer than this (`Retry-After`) is not retried (default 5 s, or
    /// half the [deadline](Self::deadline) when one is set, so an honoured wait leaves time for
    /// the retry itself). With a deadline, the cap must be shorter than it.
    pub fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = Some(cap);
        self
    }

    /// Seeds the jitter, for reproducible schedules.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<RetryPolicy<R>, InvalidConfig> {
        if self.settings.max_attempts == 0 {
            return Err(InvalidConfig::new("retry", "at least 1 attempt is needed"));
        }
        if self
            .settings
            .deadline
            .is_some_and(|deadline| deadline.is_zero())
        {
            return Err(InvalidConfig::new(
                "retry",
                "the deadline must be greater than zero",
            ));
        }
        self.settings.backoff.validate("retry backoff")?;
        let mut settings = self.settings;
        settings.retry_after_cap = match (self.retry_after_cap, settings.deadline) {
            (Some(cap), Some(deadline)) if cap >= deadline => {
                return Err(InvalidConfig::new(
                    "retry",
                    format!(
                        "a Retry-After cap of {cap:?} can never be honoured within the {deadline:?} deadline; make it shorter than the deadline"
                    ),
                ));
            }
            (Some(cap), _) => cap,
            (None, Some(deadline)) => RETRY_AFTER_CAP.min(deadline / 2),
            (None, None) => RETRY_AFTER_CAP,
        };
        let rng = match self.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        Ok(RetryPolicy {
            rules: self.rules,
            shared: StripedArc::new(Shared {
                settings,
                alternatives: self.alternatives,
                budget: self.budget,
                rng: Mutex::new(rng),
                retries: AtomicU64::new(0),
                budget_exhausted: AtomicU64::new(0),
                out_of_time: AtomicU64::new(0),
                not_cloneable: AtomicU64::new(0),
            }),
            retries: 0,
            started: None,
        })
    }
}

impl<R, Request, Response, Error> Policy<Request, Response, Error> for RetryPolicy<R>
where
    R: RetryRules<Request, Response, Error>,
{
    type Future = Backoff;

    fn retry(
        &mut self,
        request: &mut Request,
        result: &mut Result<Response, Error>,
    ) -> Option<Self::Future> {
        let decision = self.rules.classify(request, result);
        let server_delay = match decision {
            RetryDecision::DoNotRetry => return None,
            RetryDecision::Retry | RetryDecision::RetryAtOnce | RetryDecision::RetryNeverSent => {
                None
            }
            RetryDecision::RetryAfter(delay) => Some(delay),
        };
        let attempts = self.retries + 1;
        if attempts >= self.shared.settings.max_attempts {
            tracing::debug!(target: "resilience::retry", attempts, "giving up: attempt limit reached");
            return None;
        }
        if decision == RetryDecision::RetryNeverSent {
            // Never sent: go elsewhere at once. No backoff (nothing is overloaded by a refused
            // connection) and no budget (the retry is the only copy any service will see).
            tracing::debug!(target: "resilience::retry", attempts, "retrying at once: the request was never sent");
            let resend = self.count_resend();
            self.rules.prepare_resend(request, resend);
            return Some(Backoff::none());
        }
        if let Some(asked) =
            server_delay.filter(|asked| *asked > self.shared.settings.retry_after_cap)
        {
            tracing::debug!(target: "resilience::retry", ?asked, "not retrying: the server asked to wait longer than the cap");
            return None;
        }
        let elsewhere = || {
            self.shared
                .alternatives
                .as_ref()
                .is_some_and(|alternatives| alternatives.has_healthy_endpoint())
        };
        let delay = match (decision, server_delay) {
            (RetryDecision::RetryAtOnce, _) => Duration::ZERO,
            // Another endpoint can take it now, and the balancer sends it there: waiting would
            // only delay the answer. Backoff is for when nothing better is available.
            (RetryDecision::Retry, None) if elsewhere() => Duration::ZERO,
            (_, Some(asked)) => asked.max(self.next_backoff()),
            (_, None) => self.next_backoff(),
        };
        let now = Instant::now();
        if let (Some(deadline), Some(started)) = (self.shared.settings.deadline, self.started) {
            let remaining = (started + deadline).saturating_duration_since(now);
            if delay + self.shared.settings.min_attempt_time >= remaining {
                self.shared.out_of_time.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "resilience::retry", ?delay, ?remaining, "not retrying: it cannot finish before the deadline");
                return None;
            }
        }
        if let Some(budget) = &self.shared.budget {
            if !budget.try_withdraw() {
                self.shared.budget_exhausted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "resilience::retry", "not retrying: the retry budget is spent");
                return None;
            }
        }
        let resend = self.count_resend();
        self.rules.prepare_resend(request, resend);
        tracing::debug!(target: "resilience::retry", attempts, ?delay, ?decision, "retrying");
        Some(if delay.is_zero() {
            Backoff::none()
        } else {
            Backoff::sleep(delay)
        })
    }

    fn clone_request(&mut self, request: &Request) -> Option<Request> {
        if self.retries == 0 {
            // The original request (tower asks the service's own policy, before cloning it for
            // this request): count it for the budget and start the deadline clock.
            if let Some(budget) = &self.shared.budget {
                budget.deposit();
            }
            if self.shared.settings.deadline.is_some() {
                self.started = Some(crate::call_scope::clock::now());
            }
        }
        let copy = self.rules.clone_request(request);
        if copy.is_none() && self.retries == 0 {
            self.shared.not_cloneable.fetch_add(1, Ordering::Relaxed);
        }
        copy
    }
}
