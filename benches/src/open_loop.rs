//! Open-loop load at a fixed rate: request *i* is due at `start + i / rate`, whether or not
//! earlier ones were answered, and its latency counts from that due time.
//!
//! Counting from the due time, not from when the request actually left, is what avoids
//! coordinated omission: a closed loop (or an open loop that measures from the real send) stops
//! sending while the server stalls, and so never records the requests that would have waited.
//! Here a stall shows up in the latencies of every request that fell due during it.
//!
//! The schedule is kept by a plain thread sleeping to each due time (microsecond timers), not by
//! tokio's timer wheel, whose 1 ms granularity would add up to a millisecond of noise to every
//! latency at 2,000 requests/s. Due requests go to a pool of keep-alive connections; the first
//! idle one takes the next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc};

use crate::Result;
use crate::client::{Connection, Target};
use crate::summary::{self, Latency};

/// The shape of a fixed-rate run.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    /// Requests per second.
    pub rate: u32,
    /// Connections in the pool: enough that one is idle whenever a request falls due.
    pub connections: usize,
    /// Traffic before measuring starts.
    pub warmup: Duration,
    /// How long to measure.
    pub duration: Duration,
}

/// What a fixed-rate run measured.
#[derive(Debug, Clone)]
pub struct OpenOutcome {
    /// From due time to answer: what a client on this schedule saw (µs).
    pub response_time: Histogram<u64>,
    /// From actual send to answer: the server's part alone (µs).
    pub service_time: Histogram<u64>,
    /// From due time to actual send: how far the generator fell behind (µs).
    pub send_lag: Histogram<u64>,
    /// Requests answered with a 2xx.
    pub succeeded: u64,
    /// Requests answered otherwise, or not at all.
    pub failed: u64,
    /// The first failure seen.
    pub first_failure: Option<String>,
}

/// The numbers reported for a fixed-rate run.
#[derive(Debug, Clone, Serialize)]
pub struct OpenSummary {
    /// The rate asked for.
    pub rate: u32,
    /// Requests measured.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Latency from the due time (coordinated-omission free).
    pub response_time: Latency,
    /// Latency from the actual send.
    pub service_time: Latency,
    /// How late requests left, from their due time.
    pub send_lag: Latency,
}

impl OpenOutcome {
    /// The reported numbers.
    pub fn summary(&self, rate: u32) -> OpenSummary {
        OpenSummary {
            rate,
            requests: self.succeeded + self.failed,
            failed: self.failed,
            response_time: Latency::of(&self.response_time),
            service_time: Latency::of(&self.service_time),
            send_lag: Latency::of(&self.send_lag),
        }
    }
}

impl OpenLoop {
    /// Runs the warm-up and the measured period at [`rate`](Self::rate).
    pub async fn run(&self, target: &Target) -> Result<OpenOutcome> {
        if self.rate == 0 {
            return Err("the rate must be at least 1 request/s".into());
        }
        // Open the connections before the schedule starts: connecting is not what is measured.
        let mut connections = Vec::with_capacity(self.connections);
        for _ in 0..self.connections.max(1) {
            connections.push(Connection::open(target).await?);
        }
        let start = Instant::now() + Duration::from_millis(20);
        let measuring_from = start + self.warmup;
        let end = measuring_from + self.duration;
        let (due_tx, due_rx) = mpsc::unbounded_channel();
        let interval = Duration::from_secs(1) / self.rate;
        let pacer = std::thread::spawn(move || pace(start, end, interval, &due_tx));
        let due_rx = Arc::new(Mutex::new(due_rx));
        let workers: Vec<_> = connections
            .into_iter()
            .map(|connection| {
                let worker = Worker::new(measuring_from);
                tokio::spawn(worker.run(connection, target.clone(), due_rx.clone()))
            })
            .collect();
        let mut outcome = OpenOutcome {
            response_time: summary::new_histogram(),
            service_time: summary::new_histogram(),
            send_lag: summary::new_histogram(),
            succeeded: 0,
            failed: 0,
            first_failure: None,
        };
        for worker in workers {
            let worker = worker.await?;
            outcome.response_time.add(&worker.response_time)?;
            outcome.service_time.add(&worker.service_time)?;
            outcome.send_lag.add(&worker.send_lag)?;
            outcome.succeeded += worker.succeeded;
            outcome.failed += worker.failed;
            if outcome.first_failure.is_none() {
                outcome.first_failure = worker.first_failure;
            }
        }
        pacer
            .join()
            .map_err(|_| "the pacing thread panicked".to_owned())?;
        Ok(outcome)
    }
}

/// Sends each due time into `due` at that time, from `start` until `end`; dropping the sender
/// at the end tells the workers to finish.
fn pace(start: Instant, end: Instant, interval: Duration, due: &mpsc::UnboundedSender<Instant>) {
    let mut next = start;
    while next < end {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        if due.send(next).is_err() {
            return; // every worker is gone
        }
        next += interval;
    }
}

/// One connection of the pool and what it measured.
#[derive(Debug)]
struct Worker {
    measuring_from: Instant,
    response_time: Histogram<u64>,
    service_time: Histogram<u64>,
    send_lag: Histogram<u64>,
    succeeded: u64,
    failed: u64,
    first_failure: Option<String>,
}

impl Worker {
    fn new(measuring_from: Instant) -> Self {
        Self {
            measuring_from,
            response_time: summary::new_histogram(),
            service_time: summary::new_histogram(),
            send_lag: summary::new_histogram(),
            succeeded: 0,
            failed: 0,
            first_failure: None,
        }
    }

    async fn run(
        mut self,
        connection: Connection,
        target: Target,
        due: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    ) -> Self {
        let mut connection = Some(connection);
        loop {
            // The lock is held only while waiting: idle workers queue for the next due request.
            let Some(due_at) = due.lock().await.recv().await else {
                return self;
            };
            let sent = Instant::now();
            let open = match connection.take() {
                Some(open) if open.is_open() => Ok(open),
                _ => Connection::open(&target).await,
            };
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
            if due_at < self.measuring_from {
                continue; // warm-up
            }
            summary::record(
                &mut self.response_time,
                done.saturating_duration_since(due_at),
            );
            summary::record(&mut self.service_time, done - sent);
            summary::record(&mut self.send_lag, sent.saturating_duration_since(due_at));
            match answer {
                Ok(answer) if answer.is_success() => self.succeeded += 1,
                Ok(answer) => {
                    self.failed += 1;
                    self.first_failure
                        .get_or_insert_with(|| format!("HTTP {}", answer.status));
                }
                Err(err) => {
                    self.failed += 1;
                    self.first_failure.get_or_insert_with(|| err.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

    use std::sync::atomic::Ordering;

    use super::*;
    use crate::test_server;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_the_scheduled_number_of_requests() {
        let (target, answered) = test_server::start(200).await;
        let shape = OpenLoop {
            rate: 500,
            connections: 4,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
        };
        let outcome = shape.run(&target).await.unwrap();
        // 500/s for 0.4 s measured, after 0.1 s of warm-up: exactly 200 and 50 due times.
        assert_eq!(outcome.succeeded + outcome.failed, 200);
        assert_eq!(outcome.failed, 0);
        assert_eq!(answered.load(Ordering::Relaxed), 250);
        // Counted from the due time, a response can never be faster than from the send.
        let summary = outcome.summary(shape.rate);
        assert!(summary.response_time.p50_us >= summary.service_time.p50_us);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_zero_rate_is_refused() {
        let (target, _) = test_server::start(200).await;
        let shape = OpenLoop {
            rate: 0,
            connections: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(10),
        };
        assert!(shape.run(&target).await.is_err());
    }
}
