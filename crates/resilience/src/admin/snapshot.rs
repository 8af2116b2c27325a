//! What the admin service serves as JSON: every upstream and endpoint now, and each state
//! change as it happens.

use serde::{Serialize, Serializer};

use super::latency::LatencyPercentiles;
use super::registry::unix_ms;
use crate::balance::EndpointStatus;
use crate::circuit_breaker::{CircuitBreakerMetrics, State, StateChange};

/// Every registered upstream and its endpoints, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// In the order they were registered.
    pub upstreams: Vec<UpstreamSnapshot>,
}

/// One upstream: its retries and hedges, and its endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamSnapshot {
    /// Its name.
    pub name: String,
    /// Retries sent since start, when the upstream counts them.
    pub retries: Option<u64>,
    /// Retries per second over the last ten seconds (none until a second look).
    pub retries_per_second: Option<f64>,
    /// Hedges sent since start, when the upstream counts them.
    pub hedges: Option<u64>,
    /// Hedges per second over the last ten seconds.
    pub hedges_per_second: Option<f64>,
    /// Its endpoints now.
    pub endpoints: Vec<EndpointSnapshot>,
}

/// One endpoint: its breaker and its traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSnapshot {
    /// The breaker's name (for a `ResilientClient`, `upstream@url`); actions take it.
    pub name: String,
    /// The endpoint it guards: for a `ResilientClient`, the URL; otherwise what
    /// [`WatchedEndpoint::at`](super::WatchedEndpoint::at) said, or the name without its
    /// upstream's prefix.
    pub endpoint: String,
    /// The breaker's state, written as `closed`, `open`, `half_open`, `forced_open` or
    /// `forced_closed`.
    #[serde(serialize_with = "state_name")]
    pub state: State,
    /// Failures in a row (closed state).
    pub consecutive_failures: u32,
    /// Calls that reached the endpoint and completed, since start.
    pub calls: u64,
    /// Of those, successes.
    pub successes: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Calls the breaker rejected.
    pub rejected: u64,
    /// Completed calls per second over the last ten seconds (none until a second look).
    pub requests_per_second: Option<f64>,
    /// Failed calls over completed calls in the last ten seconds (none without calls).
    pub error_rate: Option<f64>,
    /// Rejected calls per second over the last ten seconds.
    pub rejected_per_second: Option<f64>,
    /// Median latency of the last ten seconds, in milliseconds, where measured.
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile latency of the last ten seconds, in milliseconds, where measured.
    pub latency_p99_ms: Option<f64>,
    /// While open: milliseconds until a probe is admitted.
    pub next_probe_in_ms: Option<u64>,
    /// The most recent state change.
    pub last_transition: Option<Transition>,
    /// Completed calls per second between the looks of the last minute, oldest first: the
    /// sparkline.
    pub history: Vec<f64>,
    /// What the load-aware balancer knows of it, where one balances it.
    pub balancing: Option<BalancingSnapshot>,
}

/// One endpoint as a [`LeastLoaded`](crate::balance::LeastLoaded) balancer sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BalancingSnapshot {
    /// Calls outstanding.
    pub outstanding: u32,
    /// The latency estimate (peak-EWMA), in milliseconds; none before the first answer.
    pub latency_estimate_ms: Option<f64>,
    /// Slow start's weight: below 1 while it ramps up.
    pub weight: f64,
    /// While ejected as an outlier: milliseconds until it is back.
    pub ejected_for_ms: Option<u64>,
    /// Calls and failures in the outlier-detection window.
    pub window_calls: u32,
    /// Failures among them.
    pub window_failures: u32,
}

impl From<&EndpointStatus> for BalancingSnapshot {
    fn from(status: &EndpointStatus) -> Self {
        Self {
            outstanding: status.pending,
            latency_estimate_ms: status.latency.map(|latency| latency.as_secs_f64() * 1000.0),
            weight: status.weight,
            ejected_for_ms: status
                .ejected_for
                .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            window_calls: status.window_calls,
            window_failures: status.window_failures,
        }
    }
}

impl EndpointSnapshot {
    pub(super) fn new(
        name: String,
        endpoint: String,
        metrics: &CircuitBreakerMetrics,
        latency: Option<LatencyPercentiles>,
    ) -> Self {
        let millis = |at: Option<std::time::Duration>| at.map(|at| at.as_secs_f64() * 1000.0);
        Self {
            endpoint,
            name,
            state: metrics.state,
            consecutive_failures: metrics.consecutive_failures,
            calls: metrics.calls(),
            successes: metrics.successes,
            failures: metrics.failures,
            rejected: metrics.rejected,
            requests_per_second: None,
            error_rate: None,
            rejected_per_second: None,
            latency_p50_ms: millis(latency.and_then(|l| l.p50)),
            latency_p99_ms: millis(latency.and_then(|l| l.p99)),
            next_probe_in_ms: metrics
                .next_probe_in
                .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            last_transition: metrics.last_change.as_ref().map(Transition::from),
            history: Vec::new(),
            balancing: None,
        }
    }
}

fn state_name<S: Serializer>(state: &State, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.as_str())
}

/// One state change, as the stream sends it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The breaker's name.
    pub breaker: String,
    /// The state left.
    pub from: &'static str,
    /// The state entered.
    pub to: &'static str,
    /// Why, in words: `5 consecutive failures`, `probe succeeded`, `forced open`, ...
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// For a change to open: milliseconds until the next probe.
    pub open_for_ms: Option<u64>,
}

impl From<&StateChange> for Transition {
    fn from(change: &StateChange) -> Self {
        Self {
            breaker: change.breaker.to_string(),
            from: change.from.as_str(),
            to: change.to.as_str(),
            reason: change.reason.to_string(),
            at_unix_ms: unix_ms(change.at_wall_clock),
            open_for_ms: change
                .open_for
                .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}
