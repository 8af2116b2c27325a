//! The active check: while a breaker is open, ask the endpoint itself whether it is back.
//!
//! Without it, an open breaker learns of a recovery only from the next live call after the open
//! duration, so a replica restarted a second after it tripped waits out the rest of the open
//! duration with no traffic. With a check, the breaker asks the endpoint on a short, jittered
//! interval (an HTTP client asks its health path) and turns half-open as soon as an answer
//! comes back: the next live call is the probe, and closes the breaker when it succeeds. The
//! check only opens the door to a probe; it never closes the breaker on its own, so an endpoint
//! whose health path answers while its real routes fail still cannot take traffic back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::events::{State, TransitionReason};
use super::state::Core;
use crate::striped_arc::WeakStriped;

use crate::error::{BoxError, InvalidConfig};

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type CheckFn = dyn Fn() -> CheckFuture + Send + Sync;

/// How to ask an endpoint whether it is back, and how often, while its breaker is open.
///
/// ```
/// use std::time::Duration;
/// use resilience::circuit_breaker::HealthCheck;
///
/// // Any async function answering Ok when the endpoint is healthy.
/// let check = HealthCheck::new(|| async { Ok::<(), std::io::Error>(()) })
///     .every(Duration::from_millis(250))
///     .timeout(Duration::from_millis(200));
/// # let _ = check;
/// ```
///
/// Attach it to one breaker with
/// [`CircuitBreaker::with_health_check`](super::CircuitBreaker::with_health_check). The check
/// runs on a task of its own, spawned on the tokio runtime the breaker tripped on, only while
/// the breaker is open.
#[derive(Clone)]
pub struct HealthCheck {
    check: Arc<CheckFn>,
    interval: Duration,
    jitter: f64,
    timeout: Duration,
}

impl HealthCheck {
    /// Checks with `check`, every 250 ms (shortened by up to 20 % jitter), allowing each check
    /// 250 ms.
    pub fn new<F, Fut, E>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let check = move || -> CheckFuture {
            let future = check();
            Box::pin(async move { future.await.map_err(Into::into) })
        };
        Self {
            check: Arc::new(check),
            interval: Duration::from_millis(250),
            jitter: 0.2,
            timeout: Duration::from_millis(250),
        }
    }

    /// Checks every `interval` instead.
    pub fn every(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Shortens each interval by a random share of up to `jitter` (0 to 1, default 0.2), so that
    /// many clients do not check one endpoint in step.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Gives each check at most `timeout`; a check that takes longer failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the schedule.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let invalid = |reason: &str| Err(InvalidConfig::new("health check", reason));
        if self.interval.is_zero() || self.timeout.is_zero() {
            return invalid("the interval and the timeout must be greater than zero");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return invalid("jitter must be between 0 and 1");
        }
        Ok(())
    }

    /// The wait before the next check.
    pub(crate) fn next_interval<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        crate::backoff::jitter_down(self.interval, self.jitter, rng)
    }

    /// Runs the check once: `Ok` when the endpoint answered healthy within the timeout, else
    /// why not.
    pub(crate) async fn run(&self) -> Result<(), BoxError> {
        match tokio::time::timeout(self.timeout, (self.check)()).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {:?}", self.timeout).into()),
        }
    }
}

impl std::fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCheck")
            .field("interval", &self.interval)
            .field("jitter", &self.jitter)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Checks the endpoint of a breaker open in `generation` until the check passes or the open
/// period ends. Holds the breaker weakly: a dropped breaker stops its check.
pub(super) async fn watch_open_period(
    core: WeakStriped<Core>,
    name: Arc<str>,
    generation: u64,
    check: HealthCheck,
    mut rng: SmallRng,
) {
    let mut last_failure: Option<String> = None;
    loop {
        tokio::time::sleep(check.next_interval(&mut rng)).await;
        let still_open = core
            .upgrade()
            .is_some_and(|core| core.is_open_in(generation));
        if !still_open {
            return;
        }
        if let Err(error) = check.run().await {
            // Each new reason is logged once (a wrong health path answers 404 for ever, and the
            // endpoint then only comes back when the open duration ends); the same reason again,
            // every interval while an endpoint is down, only at debug level.
            let reason = crate::error::chain_text(error.as_ref());
            if last_failure.as_ref() == Some(&reason) {
                tracing::debug!(target: "resilience::circuit_breaker", breaker = %name, %reason, "health check failed");
            } else {
                tracing::info!(target: "resilience::circuit_breaker", breaker = %name, %reason, "health check failed; checking again while the breaker is open");
            }
            last_failure = Some(reason);
            continue;
        }
        if let Some(core) = core.upgrade() {
            // Open => HalfOpen: the endpoint answers its health check; let a live call probe it.
            core.transition(
                generation,
                State::Open,
                State::HalfOpen,
                TransitionReason::HealthCheckPassed,
                Instant::now(),
            );
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn intervals_are_jittered_down_never_up() {
        let check = HealthCheck::new(|| async { Ok::<(), BoxError>(()) })
            .every(Duration::from_millis(200))
            .jitter(0.5);
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..100 {
            let wait = check.next_interval(&mut rng);
            assert!(
                (Duration::from_millis(100)..=Duration::from_millis(200)).contains(&wait),
                "{wait:?}"
            );
        }
        let steady = check.jitter(0.0);
        assert_eq!(steady.next_interval(&mut rng), Duration::from_millis(200));
    }

    #[test]
    fn rejects_a_zero_interval() {
        let check = HealthCheck::new(|| async { Ok::<(), BoxError>(()) });
        assert!(check.clone().validate().is_ok());
        assert!(check.clone().every(Duration::ZERO).validate().is_err());
        assert!(check.jitter(2.0).validate().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_hangs_fails_at_its_timeout() {
        let hangs = HealthCheck::new(std::future::pending::<Result<(), BoxError>>)
            .timeout(Duration::from_millis(100));
        let started = tokio::time::Instant::now();
        let error = hangs.run().await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(error.to_string(), "no answer within 100ms");
        let fails = HealthCheck::new(|| async { Err::<(), _>("503") });
        assert_eq!(fails.run().await.unwrap_err().to_string(), "503");
        let passes = HealthCheck::new(|| async { Ok::<(), BoxError>(()) });
        assert!(passes.run().await.is_ok());
    }
}
