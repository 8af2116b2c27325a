//! Closed-loop load: a fixed number of connections, each sending its next request as soon as the
//! previous one is answered. This finds the throughput a server sustains; its latencies include
//! queueing behind the other connections, as throughput runs always do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::Result;
use crate::client::{Connection, Target};
use crate::summary::{self, Latency};

/// How long a worker waits before reconnecting after a failed connect, so a dead server is not
/// hammered in a hot loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// The shape of a closed-loop run.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// Concurrent connections, one request in flight on each.
    pub connections: usize,
    /// Traffic before measuring starts (connections opened, caches and pools warm).
    pub warmup: Duration,
    /// Keep every request's [`Event`] (the chaos bench needs the timeline; throughput runs
    /// only need the histogram).
    pub keep_events: bool,
    /// A replica whose answers (by `x-upstream-served-by`) [`Running::last_served_by`] reports.
    pub watch_served_by: Option<String>,
}

/// One measured request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it was sent, from the start of measuring.
    pub sent_at: Duration,
    /// How long until its answer was read (or it failed).
    pub latency: Duration,
    /// The HTTP status; 0 when no answer came (connection refused or reset, client timeout).
    pub status: u16,
    /// The gateway's `x-upstream-served-by`, when present.
    pub served_by: Option<String>,
}

impl Event {
    /// Whether the client got a 2xx answer.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// When the answer was complete, from the start of measuring.
    pub fn done_at(&self) -> Duration {
        self.sent_at + self.latency
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Latencies of every measured request, failed ones included, in µs.
    pub latency: Histogram<u64>,
    /// Requests answered with a 2xx.
    pub succeeded: u64,
    /// Requests answered otherwise, or not at all.
    pub failed: u64,
    /// How long measuring lasted.
    pub measured: Duration,
    /// Every measured request, in no particular order, when [`ClosedLoop::keep_events`] was set.
    pub events: Vec<Event>,
    /// The first failure seen, to say what went wrong.
    pub first_failure: Option<String>,
}

/// The numbers reported for a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Requests measured.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Latency percentiles.
    pub latency: Latency,
}

impl Outcome {
    /// Requests measured.
    pub fn requests(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// The reported numbers.
    pub fn summary(&self) -> RunSummary {
        let seconds = self.measured.as_secs_f64();
        // Counts stay far below 2^52, where the conversion would round.
        #[allow(clippy::cast_precision_loss)]
        let requests_per_second = if seconds > 0.0 {
            self.requests() as f64 / seconds
        } else {
            0.0
        };
        RunSummary {
            requests: self.requests(),
            failed: self.failed,
            seconds,
            requests_per_second,
            latency: Latency::of(&self.latency),
        }
    }
}

/// A run in progress; [`stop`](Self::stop) ends it and collects what it measured.
#[derive(Debug)]
pub struct Running {
    measuring_from: Instant,
    stop: Arc<AtomicBool>,
    last_served_by: Arc<AtomicU64>,
    workers: Vec<JoinHandle<Worker>>,
}

impl ClosedLoop {
    /// Starts the connections; measuring begins after the warm-up.
    pub fn start(&self, target: &Target) -> Running {
        let measuring_from = Instant::now() + self.warmup;
        let stop = Arc::new(AtomicBool::new(false));
        let last_served_by = Arc::new(AtomicU64::new(0));
        let workers = (0..self.connections.max(1))
            .map(|_| {
                let worker = Worker::new(self, measuring_from, last_served_by.clone());
                tokio::spawn(worker.run(target.clone(), stop.clone()))
            })
            .collect();
        Running {
            measuring_from,
            stop,
            last_served_by,
            workers,
        }
    }

    /// Runs the warm-up, then measures for `duration`.
    pub async fn run_for(&self, target: &Target, duration: Duration) -> Result<Outcome> {
        let running = self.start(target);
        tokio::time::sleep_until((running.measuring_from() + duration).into()).await;
        running.stop().await
    }
}

impl Running {
    /// When measuring starts (the end of the warm-up); events' times count from here.
    pub fn measuring_from(&self) -> Instant {
        self.measuring_from
    }

    /// When the latest answer from the watched replica completed (from the start of measuring),
    /// if one has.
    pub fn last_served_by(&self) -> Option<Duration> {
        match self.last_served_by.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros - 1)),
        }
    }

    /// Stops sending (requests in flight finish) and merges what the connections measured.
    pub async fn stop(self) -> Result<Outcome> {
        let stopped_at = Instant::now();
        self.stop.store(true, Ordering::Relaxed);
        let mut outcome = Outcome {
            latency: summary::new_histogram(),
            succeeded: 0,
            failed: 0,
            measured: stopped_at.saturating_duration_since(self.measuring_from),
            events: Vec::new(),
            first_failure: None,
        };
        for worker in self.workers {
            let worker = worker.await?;
            outcome.latency.add(&worker.latency)?;
            outcome.succeeded += worker.succeeded;
            outcome.failed += worker.failed;
            outcome.events.extend(worker.events);
            if outcome.first_failure.is_none() {
                outcome.first_failure = worker.first_failure;
            }
        }
        Ok(outcome)
    }
}

/// One connection's loop and what it measured.
#[derive(Debug)]
struct Worker {
    measuring_from: Instant,
    keep_events: bool,
    watch: Option<(String, Arc<AtomicU64>)>,
    latency: Histogram<u64>,
    succeeded: u64,
    failed: u64,
    events: Vec<Event>,
    first_failure: Option<String>,
}

impl Worker {
    fn new(shape: &ClosedLoop, measuring_from: Instant, last_served_by: Arc<AtomicU64>) -> Self {
        Self {
            measuring_from,
            keep_events: shape.keep_events,
            watch: shape
                .watch_served_by
                .clone()
                .map(|name| (name, last_served_by)),
            latency: summary::new_histogram(),
            succeeded: 0,
            failed: 0,
            events: Vec::new(),
            first_failure: None,
        }
    }

    async fn run(mut self, target: Target, stop: Arc<AtomicBool>) -> Self {
        let mut connection: Option<Connection> = None;
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let open = match connection.take() {
                Some(open) if open.is_open() => Ok(open),
                _ => Connection::open(&target).await,
            };
            let connected = open.is_ok();
            let answer = match open {
                Ok(mut open) => {
                    let answer = open.get().await;
                    if answer.is_ok() {
                        connection = Some(open);
                    }
                    answer
                }
                Err(err) => Err(err),
            };
            let done = Instant::now();
            if !connected {
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
            if sent < self.measuring_from {
                continue; // warm-up
            }
            let (status, served_by) = match answer {
                Ok(answer) => (answer.status, answer.served_by),
                Err(err) => {
                    if self.first_failure.is_none() {
                        self.first_failure = Some(err.to_string());
                    }
                    (0, None)
                }
            };
            self.record(sent, done, status, served_by);
        }
        self
    }

    fn record(
        &mut self,
        sent: Instant,
        done: Instant,
        status: u16,
        served_by: Option<http::HeaderValue>,
    ) {
        let latency = done - sent;
        summary::record(&mut self.latency, latency);
        if (200..300).contains(&status) {
            self.succeeded += 1;
        } else {
            self.failed += 1;
            if self.first_failure.is_none() && status != 0 {
                self.first_failure = Some(format!("HTTP {status}"));
            }
        }
        let served_by = served_by.and_then(|value| value.to_str().ok().map(str::to_owned));
        if let (Some((name, last)), Some(by)) = (&self.watch, &served_by) {
            if name == by {
                let micros = (done - self.measuring_from).as_micros();
                last.fetch_max(
                    u64::try_from(micros).unwrap_or(u64::MAX - 1) + 1,
                    Ordering::Relaxed,
                );
            }
        }
        if self.keep_events {
            self.events.push(Event {
                sent_at: sent - self.measuring_from,
                latency,
                status,
                served_by,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

    use super::*;
    use crate::test_server;

    fn shape(connections: usize) -> ClosedLoop {
        ClosedLoop {
            connections,
            warmup: Duration::from_millis(20),
            keep_events: true,
            watch_served_by: Some("users-2".into()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_every_measured_request_and_who_served_it() {
        let (target, answered) = test_server::start(200).await;
        let outcome = shape(4)
            .run_for(&target, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(outcome.succeeded > 10, "{outcome:?}");
        assert_eq!(outcome.failed, 0);
        assert_eq!(outcome.latency.len(), outcome.requests());
        assert_eq!(outcome.events.len() as u64, outcome.requests());
        // The warm-up's requests were answered but not measured.
        assert!(answered.load(Ordering::Relaxed) > outcome.requests());
        let by_users_2 = outcome
            .events
            .iter()
            .filter(|event| event.served_by.as_deref() == Some("users-2"))
            .count();
        assert!(by_users_2 > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_when_the_watched_replica_last_answered() {
        let (target, _) = test_server::start(200).await;
        let running = shape(2).start(&target);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seen = running.last_served_by();
        let outcome = running.stop().await.unwrap();
        let last = outcome
            .events
            .iter()
            .filter(|event| event.served_by.as_deref() == Some("users-2"))
            .map(Event::done_at)
            .max()
            .unwrap();
        assert!(
            seen.is_some_and(|seen| seen <= last),
            "{seen:?} vs {last:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn error_statuses_are_failures() {
        let (target, _) = test_server::start(503).await;
        let outcome = shape(2)
            .run_for(&target, Duration::from_millis(100))
            .await
            .unwrap();
        assert!(outcome.failed > 0);
        assert_eq!(outcome.succeeded, 0);
        assert_eq!(outcome.first_failure.as_deref(), Some("HTTP 503"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_is_not_there_fails_requests_without_stopping_the_run() {
        let (mut target, _) = test_server::start(200).await;
        // A port nothing listens on: bind one, then free it.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        target.addr = free.local_addr().unwrap();
        drop(free);
        let outcome = shape(2)
            .run_for(&target, Duration::from_millis(100))
            .await
            .unwrap();
        assert!(outcome.failed > 0);
        assert_eq!(outcome.succeeded, 0);
        assert!(outcome.events.iter().all(|event| event.status == 0));
        assert!(outcome.first_failure.unwrap().contains("cannot connect"));
    }
}
