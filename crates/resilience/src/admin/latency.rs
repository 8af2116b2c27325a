//! Per-endpoint latency over the last ten seconds, for the dashboard: an opt-in layer that reads
//! tokio's clock when a call starts and when it ends, and adds one to a bucket.
//!
//! The buckets are the hedge's (four per power of two of microseconds, bounds within 19 % of
//! each other). Time is cut into ten one-second slots of the crate's sliding window
//! ([`SlotRing`], the one under the breaker's time window too): the first call of a new second
//! claims its slot with one compare-and-swap and clears it. A call that ends exactly while its
//! slot is being cleared may be lost; a dashboard can afford that, a hot path cannot afford a
//! lock.
//!
//! Cost per call: two clock reads, one `Arc` clone and one relaxed atomic add (two at the first
//! call of a second); no lock and no allocation. Memory: about 10 KiB per endpoint.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::hedge::latency::{BUCKETS, bucket_of, percentile};
use crate::window::SlotRing;

/// Slots of one second each: the window is this many seconds.
const SLOTS: u64 = 10;

/// The latency of the calls that completed in the last ten seconds, shared by every clone.
///
/// Fill it with a [`LatencyLayer`] (or [`record`](Self::record) by hand) and read it with
/// [`percentiles`](Self::percentiles); a [`Registry`](super::Registry) shows it beside the
/// endpoint's breaker.
#[derive(Clone)]
pub struct LatencyRecorder {
    inner: Arc<Slots>,
}

struct Slots {
    epoch: Instant,
    /// One slot per second since `epoch`, each a histogram of the calls that ended in it.
    ring: SlotRing<BUCKETS>,
}

/// What a [`LatencyRecorder`] saw over the last ten seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencyPercentiles {
    /// Calls that completed.
    pub calls: u64,
    /// The median, rounded up to its bucket's bound; `None` without calls.
    pub p50: Option<Duration>,
    /// The 99th percentile, rounded up likewise.
    pub p99: Option<Duration>,
}

impl LatencyRecorder {
    /// An empty recorder whose seconds count from now (tokio's clock).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Slots {
                epoch: Instant::now(),
                ring: SlotRing::new(SLOTS as usize),
            }),
        }
    }

    /// Counts one call that took `latency` and ended at `now`.
    pub fn record(&self, now: Instant, latency: Duration) {
        self.inner.ring.record(0, self.second_of(now), |counts| {
            counts[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
        });
    }

    /// The median and 99th percentile of the calls that ended in the ten seconds up to `now`.
    pub fn percentiles(&self, now: Instant) -> LatencyPercentiles {
        let counts = self.inner.ring.sum(0, self.second_of(now));
        LatencyPercentiles {
            calls: counts.iter().sum(),
            p50: percentile(&counts, 0.5),
            p99: percentile(&counts, 0.99),
        }
    }

    fn second_of(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.inner.epoch).as_secs()
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LatencyRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyRecorder")
            .field("last_10s", &self.percentiles(Instant::now()))
            .finish()
    }
}

/// Measures every call of the wrapped service into one [`LatencyRecorder`].
///
/// Put it inside the breaker, so it measures the calls that reached the endpoint:
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use resilience::{CircuitBreakerConfig, CircuitBreakerLayer};
/// use resilience::admin::{LatencyLayer, LatencyRecorder, Registry, WatchedEndpoint};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), resilience::BoxError> {
/// let latency = LatencyRecorder::new();
/// let endpoint = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(CircuitBreakerConfig::default()).named("users@a"))
///     .layer(LatencyLayer::new(latency.clone()))
///     .service(service_fn(|id: u32| async move { Ok::<_, resilience::BoxError>(id) }));
/// let registry = Registry::new();
/// let watched = WatchedEndpoint::new(endpoint.handle()).with_latency(latency.clone());
/// registry.add("users", move || vec![watched.clone()]);
/// endpoint.oneshot(7).await?;
/// assert_eq!(latency.percentiles(tokio::time::Instant::now()).calls, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LatencyLayer {
    recorder: LatencyRecorder,
}

impl LatencyLayer {
    /// Records into `recorder`.
    pub fn new(recorder: LatencyRecorder) -> Self {
        Self { recorder }
    }
}

impl<S> Layer<S> for LatencyLayer {
    type Service = Latency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Latency {
            inner,
            recorder: self.recorder.clone(),
        }
    }
}

/// A service whose calls are timed into a [`LatencyRecorder`]; see [`LatencyLayer`].
#[derive(Debug, Clone)]
pub struct Latency<S> {
    inner: S,
    recorder: LatencyRecorder,
}

impl<S> Latency<S> {
    /// The recorder.
    pub fn recorder(&self) -> &LatencyRecorder {
        &self.recorder
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Request> Service<Request> for Latency<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(request),
            started: Instant::now(),
            recorder: self.recorder.clone(),
        }
    }
}

pin_project! {
    /// The inner service's answer; its latency is recorded when it completes (a call dropped
    /// before it completes records nothing).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        recorder: LatencyRecorder,
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        let now = Instant::now();
        this.recorder
            .record(now, now.saturating_duration_since(*this.started));
        Poll::Ready(output)
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hedge::latency::bucket_upper;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn reports_the_median_and_99th_percentile_of_the_last_ten_seconds() {
        let recorder = LatencyRecorder::new();
        for _ in 0..98 {
            recorder.record(Instant::now(), ms(2));
        }
        recorder.record(Instant::now(), ms(40));
        recorder.record(Instant::now(), ms(900));
        let seen = recorder.percentiles(Instant::now());
        assert_eq!(seen.calls, 100);
        assert_eq!(seen.p50, Some(bucket_upper(bucket_of(ms(2)))));
        assert_eq!(seen.p99, Some(bucket_upper(bucket_of(ms(40)))));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_older_than_ten_seconds_drop_out() {
        let recorder = LatencyRecorder::new();
        recorder.record(Instant::now(), ms(500));
        tokio::time::advance(Duration::from_secs(5)).await;
        recorder.record(Instant::now(), ms(3));
        assert_eq!(recorder.percentiles(Instant::now()).calls, 2);
        tokio::time::advance(Duration::from_secs(5)).await;
        let later = recorder.percentiles(Instant::now());
        assert_eq!(later.calls, 1, "the call of second 0 is out of the window");
        assert_eq!(later.p99, Some(bucket_upper(bucket_of(ms(3)))));
        // Second 10 reuses second 0's slot, which starts empty.
        recorder.record(Instant::now(), ms(7));
        assert_eq!(recorder.percentiles(Instant::now()).calls, 2);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            recorder.percentiles(Instant::now()),
            LatencyPercentiles::default()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_times_each_completed_call() {
        use tower::{ServiceExt, service_fn};
        let recorder = LatencyRecorder::new();
        let service =
            LatencyLayer::new(recorder.clone()).layer(service_fn(|wait: u64| async move {
                tokio::time::sleep(ms(wait)).await;
                Ok::<_, std::convert::Infallible>(wait)
            }));
        service.clone().oneshot(30).await.unwrap();
        service.oneshot(30).await.unwrap();
        let seen = recorder.percentiles(Instant::now());
        assert_eq!(seen.calls, 2);
        assert_eq!(seen.p50, Some(bucket_upper(bucket_of(ms(30)))));
    }
}
