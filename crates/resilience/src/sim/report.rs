//! Running a load through a client, and what its callers saw.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service;

use super::{Load, SimAnswer};

/// One call as its caller saw it.
#[derive(Debug, Clone)]
struct Call {
    /// When it was sent, since the run started.
    sent: Duration,
    latency: Duration,
    /// The endpoint that answered, or `None` if the call failed.
    answered_by: Option<Arc<str>>,
}

/// What the callers of a [`Fleet::run`](super::Fleet::run) saw.
#[derive(Debug, Clone)]
pub struct Report {
    calls: Vec<Call>,
    /// Requests sent.
    pub requests: usize,
    /// Requests that failed (the client returned an error).
    pub failed: usize,
    /// The first few distinct errors, for a failing assertion's message.
    pub errors: Vec<String>,
}

impl Report {
    /// The latency below which a share `q` (0 to 1) of the requests were answered, failed ones
    /// included.
    pub fn percentile(&self, q: f64) -> Duration {
        let mut latencies: Vec<Duration> = self.calls.iter().map(|call| call.latency).collect();
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        latencies.sort_unstable();
        let rank = ((q.clamp(0.0, 1.0) * latencies.len() as f64).ceil() as usize).max(1);
        latencies[rank.min(latencies.len()) - 1]
    }

    /// The median latency.
    pub fn p50(&self) -> Duration {
        self.percentile(0.5)
    }

    /// The 99th percentile latency.
    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    /// Requests that took longer than `limit`.
    pub fn slower_than(&self, limit: Duration) -> usize {
        self.calls
            .iter()
            .filter(|call| call.latency > limit)
            .count()
    }

    /// The share (0 to 1) of successful answers given by the endpoint called `name`.
    pub fn share(&self, name: &str) -> f64 {
        self.share_between(name, Duration::ZERO, Duration::MAX)
    }

    /// The share of the successful answers to requests sent between `from` and `to` after the
    /// run started that the endpoint called `name` gave.
    pub fn share_between(&self, name: &str, from: Duration, to: Duration) -> f64 {
        let answered: Vec<&Arc<str>> = self
            .calls
            .iter()
            .filter(|call| call.sent >= from && call.sent < to)
            .filter_map(|call| call.answered_by.as_ref())
            .collect();
        if answered.is_empty() {
            return 0.0;
        }
        let by_name = answered
            .iter()
            .filter(|endpoint| endpoint.as_ref() == name)
            .count();
        by_name as f64 / answered.len() as f64
    }

    /// The endpoints that answered, with how many answers each gave, by name.
    pub fn answers(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for endpoint in self
            .calls
            .iter()
            .filter_map(|call| call.answered_by.as_ref())
        {
            match counts
                .iter_mut()
                .find(|(name, _)| name.as_str() == &**endpoint)
            {
                Some((_, count)) => *count += 1,
                None => counts.push((endpoint.to_string(), 1)),
            }
        }
        counts.sort();
        counts
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} failed, p50 {:?}, p99 {:?}, answers {:?}",
            self.requests,
            self.failed,
            self.p50(),
            self.p99(),
            self.answers()
        )?;
        if !self.errors.is_empty() {
            write!(f, ", errors {:?}", self.errors)?;
        }
        Ok(())
    }
}

pub(super) async fn run<S>(load: Load, client: S, _seed: u64) -> Report
where
    S: Service<u64, Response = SimAnswer> + Clone + Send + 'static,
    S::Error: fmt::Display + Send,
    S::Future: Send,
{
    let started = Instant::now();
    let end = started + load.duration;
    let next_id = Arc::new(AtomicU64::new(0));
    let mut callers = JoinSet::new();
    for _ in 0..load.clients {
        let client = client.clone();
        let next_id = next_id.clone();
        callers.spawn(async move {
            let mut calls = Vec::new();
            let mut errors = Vec::new();
            while Instant::now() < end {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let mut service = client.clone();
                let result = match std::future::poll_fn(|cx| service.poll_ready(cx)).await {
                    Ok(()) => service.call(id).await,
                    Err(error) => Err(error),
                };
                let answered_by = match result {
                    Ok(answer) => Some(answer.endpoint),
                    Err(error) => {
                        errors.push(error.to_string());
                        None
                    }
                };
                calls.push(Call {
                    sent: sent - started,
                    latency: sent.elapsed(),
                    answered_by,
                });
                if !load.think.is_zero() {
                    tokio::time::sleep(load.think).await;
                }
            }
            (calls, errors)
        });
    }
    let mut calls = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    while let Some(joined) = callers.join_next().await {
        let (mut caller_calls, caller_errors) = match joined {
            Ok(done) => done,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        calls.append(&mut caller_calls);
        for error in caller_errors {
            if errors.len() < 5 && !errors.contains(&error) {
                errors.push(error);
            }
        }
    }
    calls.sort_by_key(|call| call.sent);
    let failed = calls
        .iter()
        .filter(|call| call.answered_by.is_none())
        .count();
    Report {
        requests: calls.len(),
        failed,
        errors,
        calls,
    }
}
