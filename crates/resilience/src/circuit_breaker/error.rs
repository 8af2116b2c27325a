//! The breaker's own failure.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::events::State;

/// The breaker rejected a call without calling the inner service.
///
/// This is a local decision, not a failure of the service behind the breaker:
/// [`RetryPolicy`](crate::retry::RetryPolicy) never retries it, and a gateway answers it with
/// `503 Service Unavailable` and a `Retry-After` of [`retry_after`](Self::retry_after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    breaker: Arc<str>,
    state: State,
    retry_after: Option<Duration>,
}

impl CircuitOpen {
    pub(crate) fn new(breaker: Arc<str>, state: State, retry_after: Option<Duration>) -> Self {
        Self {
            breaker,
            state,
            retry_after,
        }
    }

    /// The name of the breaker that rejected the call.
    pub fn breaker(&self) -> &str {
        &self.breaker
    }

    /// The state the breaker was in: open, half-open with every probe taken, or forced open.
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until the breaker admits a probe, when that is known: while open, the rest of
    /// the open duration. `None` while half-open (a probe in flight decides) or forced open (an
    /// operator decides).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_after) {
            (State::Open, Some(after)) => write!(
                f,
                "circuit breaker {} is open; next probe in {:.1}s",
                self.breaker,
                after.as_secs_f64()
            ),
            (State::HalfOpen, _) => {
                write!(
                    f,
                    "circuit breaker {} is half-open and every probe is in flight",
                    self.breaker
                )
            }
            (State::ForcedOpen, _) => write!(f, "circuit breaker {} was forced open", self.breaker),
            _ => write!(f, "circuit breaker {} is open", self.breaker),
        }
    }
}

impl std::error::Error for CircuitOpen {}
