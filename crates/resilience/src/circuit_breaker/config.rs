//! What makes a breaker trip and how it recovers, validated once when built.

use std::time::Duration;

use crate::backoff::ExponentialBackoff;
use crate::error::InvalidConfig;
use crate::window::SlidingWindow;

const COMPONENT: &str = "circuit breaker";

/// Slow-call detection: calls that take at least `threshold` count as slow, and the breaker trips
/// when the share of slow calls in the window reaches `rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SlowCalls {
    pub(crate) threshold: Duration,
    pub(crate) rate: f64,
}

/// A validated circuit breaker configuration.
///
/// The default trips after 5 consecutive failures, stays open 5 s the first time (doubling on
/// each failed probe up to 60 s, shortened by up to 10 % jitter) and closes after 1 successful
/// probe, giving up on a probe that has not reported back after 10 s. Rate-based conditions are off by default because they cost one shared atomic write per
/// call; turn them on with the [builder](CircuitBreakerConfig::builder).
///
/// ```
/// use std::time::Duration;
/// use resilience::{CircuitBreakerConfig, SlidingWindow};
///
/// let config = CircuitBreakerConfig::builder()
///     .consecutive_failures(10)
///     .failure_rate(0.5)
///     .sliding_window(SlidingWindow::Time(Duration::from_secs(10)))
///     .minimum_calls(20)
///     .open_duration(Duration::from_secs(2))
///     .half_open_probes(3)
///     .build()?;
/// # let _ = config;
///
/// let nonsense = CircuitBreakerConfig::builder().failure_rate(1.5).build();
/// assert!(nonsense.unwrap_err().to_string().contains("failure rate"));
/// # Ok::<(), resilience::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreakerConfig {
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_calls: Option<SlowCalls>,
    pub(crate) window: SlidingWindow,
    pub(crate) minimum_calls: u32,
    pub(crate) open: ExponentialBackoff,
    pub(crate) half_open_probes: u16,
    pub(crate) half_open_max_wait: Duration,
    pub(crate) seed: Option<u64>,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: Some(5),
            failure_rate: None,
            slow_calls: None,
            window: SlidingWindow::Count(100),
            minimum_calls: 10,
            open: ExponentialBackoff::new(Duration::from_secs(5), Duration::from_secs(60))
                .with_jitter(0.1),
            half_open_probes: 1,
            half_open_max_wait: Duration::from_secs(10),
            seed: None,
        }
    }
}

impl CircuitBreakerConfig {
    /// Starts from the defaults.
    pub fn builder() -> CircuitBreakerConfigBuilder {
        CircuitBreakerConfigBuilder {
            config: Self::default(),
            half_open_probes: 1,
        }
    }

    /// How many successful probes close the breaker again.
    pub fn half_open_probes(&self) -> u16 {
        self.half_open_probes
    }

    /// The open-duration schedule: the first open lasts about `base`, each failed probe grows it.
    pub fn open_backoff(&self) -> ExponentialBackoff {
        self.open
    }

    /// Whether calls must be timed (slow-call detection or a time-based window).
    pub(crate) fn needs_clock(&self) -> bool {
        self.slow_calls.is_some()
            || (self.has_window() && matches!(self.window, SlidingWindow::Time(_)))
    }

    /// Whether any rate-based condition is on, so outcomes must be recorded in a window.
    pub(crate) fn has_window(&self) -> bool {
        self.failure_rate.is_some() || self.slow_calls.is_some()
    }
}

/// Builds a [`CircuitBreakerConfig`]; [`build`](Self::build) rejects configurations that cannot
/// work.
#[derive(Debug, Clone)]
pub struct CircuitBreakerConfigBuilder {
    config: CircuitBreakerConfig,
    half_open_probes: u32,
}

impl CircuitBreakerConfigBuilder {
    /// Trips after `n` failures in a row.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.config.consecutive_failures = Some(n);
        self
    }

    /// Does not trip on consecutive failures (use a rate condition instead).
    pub fn without_consecutive_failures(mut self) -> Self {
        self.config.consecutive_failures = None;
        self
    }

    /// Trips when at least this share (0 < rate ≤ 1) of the calls in the window failed.
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.config.failure_rate = Some(rate);
        self
    }

    /// Trips when at least `rate` of the calls in the window took `threshold` or longer.
    pub fn slow_call_rate(mut self, threshold: Duration, rate: f64) -> Self {
        self.config.slow_calls = Some(SlowCalls { threshold, rate });
        self
    }

    /// The window the rates are measured over (default: the last 100 calls).
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.config.window = window;
        self
    }

    /// No rate condition trips before the window holds this many calls (default 10).
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.config.minimum_calls = n;
        self
    }

    /// How long the breaker stays open the first time (default 5 s).
    pub fn open_duration(mut self, duration: Duration) -> Self {
        let max = self.config.open.max().max(duration);
        self.config.open = self.config.open.with_base(duration).with_max(max);
        self
    }

    /// The longest the open duration grows to after repeated failed probes (default 60 s).
    pub fn max_open_duration(mut self, duration: Duration) -> Self {
        self.config.open = self.config.open.with_max(duration);
        self
    }

    /// How much the open duration grows after each failed probe (default 2).
    pub fn open_backoff_multiplier(mut self, multiplier: f64) -> Self {
        self.config.open = self.config.open.with_multiplier(multiplier);
        self
    }

    /// The share by which each open duration is randomly shortened (default 0.1), so that many
    /// clients do not probe a recovering service at the same instant.
    pub fn open_jitter(mut self, jitter: f64) -> Self {
        self.config.open = self.config.open.with_jitter(jitter);
        self
    }

    /// How many probes half-open admits, all of which must succeed to close (default 1).
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = n;
        self
    }

    /// How long a half-open breaker waits for its probes to report back (default 10 s). A probe
    /// that has not finished by then counts as failed and the breaker opens again, so a probe
    /// that hangs (with no timeout below the breaker) cannot hold it half-open for good.
    pub fn half_open_max_wait(mut self, wait: Duration) -> Self {
        self.config.half_open_max_wait = wait;
        self
    }

    /// Seeds the jitter, for reproducible open durations in tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<CircuitBreakerConfig, InvalidConfig> {
        let mut config = self.config;
        let invalid = |reason: String| Err(InvalidConfig::new(COMPONENT, reason));
        if config.consecutive_failures == Some(0) {
            return invalid("consecutive failures must be at least 1".into());
        }
        if let Some(rate) = config.failure_rate {
            if !(rate > 0.0 && rate <= 1.0) {
                return invalid(format!("the failure rate must be in (0, 1], got {rate}"));
            }
        }
        if let Some(slow) = config.slow_calls {
            if !(slow.rate > 0.0 && slow.rate <= 1.0) {
                return invalid(format!(
                    "the slow-call rate must be in (0, 1], got {}",
                    slow.rate
                ));
            }
            if slow.threshold.is_zero() {
                return invalid("the slow-call threshold must be greater than zero".into());
            }
        }
        if config.consecutive_failures.is_none() && !config.has_window() {
            return invalid(
                "no trip condition: set consecutive failures, a failure rate or a slow-call rate"
                    .into(),
            );
        }
        match config.window {
            SlidingWindow::Count(0) => {
                return invalid("a count window must hold at least 1 call".into());
            }
            SlidingWindow::Count(n) if n > MAX_COUNT_WINDOW => {
                return invalid(format!(
                    "a count window holds at most {MAX_COUNT_WINDOW} calls, got {n}"
                ));
            }
            SlidingWindow::Count(n) if config.has_window() && n < config.minimum_calls => {
                return invalid(format!(
                    "a window of {n} calls never reaches the minimum of {} calls, so the rates could never trip",
                    config.minimum_calls
                ));
            }
            SlidingWindow::Time(d) if d < Duration::from_millis(10) => {
                return invalid(format!("a time window must span at least 10ms, got {d:?}"));
            }
            _ => {}
        }
        if config.minimum_calls == 0 {
            return invalid("the minimum number of calls must be at least 1".into());
        }
        config.half_open_probes = match u16::try_from(self.half_open_probes) {
            Ok(0) => return invalid("half-open must admit at least 1 probe".into()),
            Ok(n) => n,
            Err(_) => return invalid(format!("half-open admits at most {} probes", u16::MAX)),
        };
        if config.half_open_max_wait.is_zero() {
            return invalid("the maximum half-open wait must be greater than zero".into());
        }
        config.open.validate(COMPONENT)?;
        Ok(config)
    }
}

/// The largest count window (its slots are allocated up front).
const MAX_COUNT_WINDOW: u32 = 1 << 16;
