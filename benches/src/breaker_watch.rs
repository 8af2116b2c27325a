//! Watches one endpoint's circuit breaker through the gateway's `/admin/status`, polling at a
//! fixed interval, and keeps every sample with the time it was taken.
//!
//! Polling rather than reading the gateway's log: the status JSON is the gateway's public
//! interface, and each transition in it carries its own wall-clock time (`at_unix`), so the
//! poll interval bounds when a change is *seen*, not how precisely it is timed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::Result;
use crate::client::{Connection, Target};

/// What `/admin/status` said about the endpoint at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerSample {
    /// When the answer came, from the watch's origin.
    pub at: Duration,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// How long until an open breaker lets a probe through.
    pub next_probe_in_ms: Option<u64>,
    /// The latest state change.
    pub last_transition: Option<Transition>,
}

/// A breaker state change as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The state left.
    pub from: String,
    /// The state entered.
    pub to: String,
    /// Why, in the gateway's words.
    pub reason: String,
    /// When, as Unix time in seconds.
    pub at_unix: f64,
}

/// A running watch; [`finish`](BreakerWatch::finish) stops it.
#[derive(Debug)]
pub struct BreakerWatch {
    samples: Arc<Mutex<Vec<BreakerSample>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<()>>,
}

impl BreakerWatch {
    /// Polls `GET /admin/status` on `gateway` every `every`, for the endpoint of `service` whose
    /// URL ends with `endpoint` (e.g. `127.0.0.1:8083`), with the operator key `api_key`. Times
    /// count from `origin`.
    pub fn start(
        gateway: SocketAddr,
        api_key: &str,
        service: &str,
        endpoint: &str,
        every: Duration,
        origin: Instant,
    ) -> Self {
        let target = Target {
            name: "status".into(),
            addr: gateway,
            path: "/admin/status".into(),
            api_key: Some(api_key.to_owned()),
        };
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (service, endpoint) = (service.to_owned(), endpoint.to_owned());
        let task = tokio::spawn({
            let (samples, stop) = (samples.clone(), stop.clone());
            async move {
                let mut connection = Connection::open(&target).await?;
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while !stop.load(Ordering::Relaxed) {
                    ticks.tick().await;
                    if !connection.is_open() {
                        connection = Connection::open(&target).await?;
                    }
                    let answer = connection.get().await?;
                    let at = origin.elapsed();
                    let status: Value = serde_json::from_slice(&answer.body)?;
                    if let Some(sample) = sample_of(&status, &service, &endpoint, at) {
                        samples
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(sample);
                    }
                }
                Ok(())
            }
        });
        Self {
            samples,
            stop,
            task,
        }
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<BreakerSample> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned()
    }

    /// Stops polling and returns every sample, oldest first.
    pub async fn finish(self) -> Result<Vec<BreakerSample>> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await??;
        let samples =
            std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(samples)
    }
}

/// The endpoint's breaker in a `/admin/status` answer.
fn sample_of(status: &Value, service: &str, endpoint: &str, at: Duration) -> Option<BreakerSample> {
    let breaker = status["upstreams"]
        .as_array()?
        .iter()
        .find(|upstream| upstream["service"] == service)?["endpoints"]
        .as_array()?
        .iter()
        .find(|e| {
            e["endpoint"]
                .as_str()
                .is_some_and(|url| url.ends_with(endpoint))
        })?;
    let transition = &breaker["last_transition"];
    Some(BreakerSample {
        at,
        state: breaker["state"].as_str()?.to_owned(),
        next_probe_in_ms: breaker["next_probe_in_ms"].as_u64(),
        last_transition: transition.is_object().then(|| Transition {
            from: transition["from"].as_str().unwrap_or_default().to_owned(),
            to: transition["to"].as_str().unwrap_or_default().to_owned(),
            reason: transition["reason"].as_str().unwrap_or_default().to_owned(),
            at_unix: transition["at_unix_ms"].as_f64().unwrap_or_default() / 1000.0,
        }),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

    use serde_json::json;

    use super::*;

    #[test]
    fn finds_the_endpoint_of_the_service() {
        let status = json!({"upstreams": [
            {"service": "order-service", "endpoints": [
                {"endpoint": "http://127.0.0.1:9000", "state": "closed"}]},
            {"service": "user-service", "endpoints": [
                {"endpoint": "http://127.0.0.1:8081", "state": "closed", "next_probe_in_ms": null,
                 "last_transition": null},
                {"endpoint": "http://127.0.0.1:8083", "state": "open", "next_probe_in_ms": 4935,
                 "last_transition": {"from": "closed", "to": "open",
                    "reason": "5 consecutive failures", "at_unix_ms": 1.5e12}}]}]});
        let at = Duration::from_millis(20);
        let sample = sample_of(&status, "user-service", "127.0.0.1:8083", at).unwrap();
        assert_eq!(sample.state, "open");
        assert_eq!(sample.next_probe_in_ms, Some(4935));
        let transition = sample.last_transition.unwrap();
        assert_eq!(
            (transition.from.as_str(), transition.to.as_str()),
            ("closed", "open")
        );
        assert!((transition.at_unix - 1.5e9).abs() < 1e-3);

        let other = sample_of(&status, "user-service", "127.0.0.1:8081", at).unwrap();
        assert_eq!(
            (other.state.as_str(), other.last_transition),
            ("closed", None)
        );
        assert_eq!(sample_of(&status, "user-service", "127.0.0.1:1", at), None);
    }
}
