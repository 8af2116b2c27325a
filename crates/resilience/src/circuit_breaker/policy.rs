//! When to trip: a pure function of the failure counts, tested without a runtime.

use std::fmt;
use std::time::Duration;

use super::config::CircuitBreakerConfig;
use crate::window::WindowCounts;

/// Why a closed breaker opened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TripReason {
    /// This many calls failed in a row.
    ConsecutiveFailures(u32),
    /// This share of the calls in the window failed.
    FailureRate {
        /// Failed calls / calls.
        rate: f64,
        /// Calls in the window.
        calls: u32,
    },
    /// This share of the calls in the window were slow.
    SlowCallRate {
        /// Slow calls / calls.
        rate: f64,
        /// Calls in the window.
        calls: u32,
    },
}

impl fmt::Display for TripReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConsecutiveFailures(n) => write!(f, "{n} consecutive failures"),
            Self::FailureRate { rate, calls } => {
                write!(
                    f,
                    "failure rate {:.0}% over the last {calls} calls",
                    rate * 100.0
                )
            }
            Self::SlowCallRate { rate, calls } => {
                write!(
                    f,
                    "slow-call rate {:.0}% over the last {calls} calls",
                    rate * 100.0
                )
            }
        }
    }
}

/// The trip conditions of one breaker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TripPolicy {
    consecutive_failures: Option<u32>,
    failure_rate: Option<f64>,
    slow_call_rate: Option<f64>,
    slow_threshold: Option<Duration>,
    minimum_calls: u32,
}

impl TripPolicy {
    pub(crate) fn new(config: &CircuitBreakerConfig) -> Self {
        Self {
            consecutive_failures: config.consecutive_failures,
            failure_rate: config.failure_rate,
            slow_call_rate: config.slow_calls.map(|slow| slow.rate),
            slow_threshold: config.slow_calls.map(|slow| slow.threshold),
            minimum_calls: config.minimum_calls,
        }
    }

    /// Whether a call that took `took` counts as slow; `None` when the breaker does not time its
    /// calls.
    pub(crate) fn is_slow(&self, took: Option<Duration>) -> bool {
        matches!((self.slow_threshold, took), (Some(threshold), Some(took)) if took >= threshold)
    }

    /// After a failure that made `consecutive` failures in a row.
    pub(crate) fn after_consecutive(&self, consecutive: u32) -> Option<TripReason> {
        match self.consecutive_failures {
            Some(limit) if consecutive >= limit => {
                Some(TripReason::ConsecutiveFailures(consecutive))
            }
            _ => None,
        }
    }

    /// After a failed or slow call was added to the window that now holds `counts`.
    pub(crate) fn after_window(&self, counts: WindowCounts) -> Option<TripReason> {
        if counts.calls < self.minimum_calls || counts.calls == 0 {
            return None;
        }
        let calls = counts.calls;
        let share = |n: u32| f64::from(n) / f64::from(calls);
        if let Some(threshold) = self.failure_rate {
            let rate = share(counts.failures);
            if rate >= threshold {
                return Some(TripReason::FailureRate { rate, calls });
            }
        }
        if let Some(threshold) = self.slow_call_rate {
            let rate = share(counts.slow);
            if rate >= threshold {
                return Some(TripReason::SlowCallRate { rate, calls });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn counts(calls: u32, failures: u32, slow: u32) -> WindowCounts {
        WindowCounts {
            calls,
            failures,
            slow,
        }
    }

    #[test]
    fn consecutive_limit_is_inclusive() {
        let policy = TripPolicy::new(
            &CircuitBreakerConfig::builder()
                .consecutive_failures(3)
                .build()
                .unwrap(),
        );
        assert_eq!(policy.after_consecutive(2), None);
        assert_eq!(
            policy.after_consecutive(3),
            Some(TripReason::ConsecutiveFailures(3))
        );
    }

    #[test]
    fn rate_waits_for_the_minimum_number_of_calls() {
        let config = CircuitBreakerConfig::builder()
            .without_consecutive_failures()
            .failure_rate(0.5)
            .minimum_calls(10)
            .build()
            .unwrap();
        let policy = TripPolicy::new(&config);
        assert_eq!(
            policy.after_window(counts(9, 9, 0)),
            None,
            "below the floor nothing trips"
        );
        assert_eq!(policy.after_window(counts(10, 4, 0)), None);
        assert_eq!(
            policy.after_window(counts(10, 5, 0)),
            Some(TripReason::FailureRate {
                rate: 0.5,
                calls: 10
            })
        );
    }

    #[test]
    fn slow_calls_trip_on_their_own_rate() {
        let config = CircuitBreakerConfig::builder()
            .without_consecutive_failures()
            .slow_call_rate(Duration::from_millis(100), 0.8)
            .minimum_calls(5)
            .build()
            .unwrap();
        let policy = TripPolicy::new(&config);
        assert_eq!(policy.after_window(counts(5, 0, 3)), None);
        assert_eq!(
            policy.after_window(counts(5, 0, 4)),
            Some(TripReason::SlowCallRate {
                rate: 0.8,
                calls: 5
            })
        );
    }
}
