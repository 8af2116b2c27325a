//! What a breaker tells the world: its states, why it changed, each change, and a snapshot of
//! its counters.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::policy::TripReason;

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A limited number of probe calls go through; their outcome closes or re-opens the breaker.
    HalfOpen,
    /// An operator opened the breaker; it stays open until forced closed or reset.
    ForcedOpen,
    /// An operator closed the breaker; it admits everything and never trips until reset.
    ForcedClosed,
}

impl State {
    /// The name used in logs and status pages: `closed`, `open`, `half_open`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::ForcedClosed => "forced_closed",
        }
    }

    pub(super) fn to_bits(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
            Self::ForcedOpen => 3,
            Self::ForcedClosed => 4,
        }
    }

    pub(super) fn from_bits(bits: u64) -> Self {
        match bits & super::word::STATE_MASK {
            0 => Self::Closed,
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::ForcedOpen,
            _ => Self::ForcedClosed,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TransitionReason {
    /// A trip condition held while closed.
    Tripped(TripReason),
    /// The open duration passed; probes may go through.
    OpenDurationElapsed,
    /// The active health check found the endpoint answering; probes may go through.
    HealthCheckPassed,
    /// The probes of a half-open period did not report back within the maximum half-open wait.
    ProbeTimedOut,
    /// Every probe of the half-open period succeeded.
    ProbesSucceeded(u16),
    /// A probe failed (or was slow).
    ProbeFailed,
    /// An operator forced the breaker open.
    ForcedOpen,
    /// An operator forced the breaker closed.
    ForcedClosed,
    /// An operator reset the breaker.
    Reset,
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tripped(reason) => write!(f, "{reason}"),
            Self::OpenDurationElapsed => f.write_str("open duration elapsed"),
            Self::HealthCheckPassed => f.write_str("health check passed"),
            Self::ProbeTimedOut => f.write_str("probe timed out"),
            Self::ProbesSucceeded(1) => f.write_str("probe succeeded"),
            Self::ProbesSucceeded(n) => write!(f, "{n} probes succeeded"),
            Self::ProbeFailed => f.write_str("probe failed"),
            Self::ForcedOpen => f.write_str("forced open"),
            Self::ForcedClosed => f.write_str("forced closed"),
            Self::Reset => f.write_str("reset"),
        }
    }
}

/// One state change, as delivered to subscribers and listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// The breaker's name (see [`CircuitBreakerLayer::named`](crate::circuit_breaker::CircuitBreakerLayer::named)).
    pub breaker: Arc<str>,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: TransitionReason,
    /// When, on tokio's clock (paused in tests).
    pub at: Instant,
    /// When, on the wall clock, for people reading logs and status pages.
    pub at_wall_clock: SystemTime,
    /// For a change to [`State::Open`]: how long until the next probe is admitted.
    pub open_for: Option<Duration>,
}

impl fmt::Display for StateChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit breaker {}: {} -> {} ({})",
            self.breaker, self.from, self.to, self.reason
        )?;
        if let Some(open_for) = self.open_for {
            write!(f, "; next probe in {:.1}s", open_for.as_secs_f64())?;
        }
        Ok(())
    }
}

/// A snapshot of a breaker's state and counters.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreakerMetrics {
    /// The current state.
    pub state: State,
    /// Failures in a row since the last success (closed state).
    pub consecutive_failures: u32,
    /// Calls that completed successfully, since the breaker was made.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Calls that took at least the slow-call threshold (when one is configured).
    pub slow_calls: u64,
    /// Calls rejected without reaching the inner service.
    pub rejected: u64,
    /// The most recent state change.
    pub last_change: Option<StateChange>,
    /// While open: how long until a probe is admitted (zero once it is due).
    pub next_probe_in: Option<Duration>,
}

impl CircuitBreakerMetrics {
    /// Calls that reached the inner service and completed.
    pub fn calls(&self) -> u64 {
        self.successes + self.failures
    }
}
