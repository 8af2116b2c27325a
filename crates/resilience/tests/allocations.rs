//! The full stack's closed path allocates nothing per call beyond what the inner service does.
//!
//! One test in its own binary: dhat counts every allocation of the process, so nothing else may
//! run beside it. Futures are polled by hand with a no-op waker inside a tokio runtime's context
//! (so timers can register) that is never driven: a driven runtime does housekeeping of its own
//! (timer processing) that allocates now and then, depending on timing, and is not the stack's.
//! Each case is measured several times and the fewest allocations count, so a stray allocation
//! from another thread (the test harness's) cannot fail the exact assertions, while a per-call
//! allocation shows up in every repetition. Even so, the test harness's own thread allocates now and then; each case is
//! measured several times and the fewest allocations count, which keeps the assertions exact
//! (a per-call allocation shows up in every repetition, a stray one in at most one).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use resilience::{
    BoxError, CircuitBreakerConfig, CircuitBreakerLayer, DeadlineLayer, FailFastLayer, RetryPolicy,
    RoundRobin, TimeoutLayer,
};
use tower::retry::RetryLayer;
use tower::{Service, ServiceBuilder};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// A trivial service whose answer is ready at once, or after one `Pending` (so timers are armed
/// and wakers registered, as with a real upstream).
#[derive(Clone, Copy)]
struct Echo {
    pending_once: bool,
}

struct EchoFuture {
    value: u64,
    pending: bool,
}

impl Future for EchoFuture {
    type Output = Result<u64, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.pending {
            self.pending = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(self.value))
    }
}

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = EchoFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, value: u64) -> EchoFuture {
        EchoFuture {
            value,
            pending: self.pending_once,
        }
    }
}

const CALLS: u64 = 1_000;
const REPETITIONS: usize = 5;

/// One call, polled to completion by hand.
fn call<S>(service: &mut S, value: u64) -> u64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))),
        "the service is ready"
    );
    let mut response = pin!(service.call(value));
    loop {
        if let Poll::Ready(result) = response.as_mut().poll(&mut cx) {
            return result.unwrap();
        }
    }
}

/// Allocations per call over `CALLS` calls on `service`, after a warm-up: the fewest of
/// `REPETITIONS` measurements.
fn allocations_per_call<S>(mut service: S) -> f64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    for value in 0..100 {
        call(&mut service, value);
    }
    let mut fewest = u64::MAX;
    for _ in 0..REPETITIONS {
        let before = dhat::HeapStats::get().total_blocks;
        for value in 0..CALLS {
            assert_eq!(call(&mut service, value), value);
        }
        fewest = fewest.min(dhat::HeapStats::get().total_blocks - before);
    }
    fewest as f64 / CALLS as f64
}

fn full_stack(inner: Echo) -> impl Service<u64, Response = u64, Error = BoxError> {
    let breaker = CircuitBreakerConfig::default();
    let endpoints = ["a", "b"].map(|name| {
        let endpoint = ServiceBuilder::new()
            .layer(CircuitBreakerLayer::new(breaker.clone()).named(name))
            .layer(TimeoutLayer::new(Duration::from_secs(1)))
            .service(inner);
        (name, endpoint)
    });
    let policy = RetryPolicy::builder()
        .deadline(Duration::from_secs(3))
        .build()
        .unwrap();
    ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(3)))
        .layer(RetryLayer::new(policy))
        .layer(FailFastLayer::new())
        .service(RoundRobin::new(endpoints))
}

#[test]
fn the_full_stack_allocates_nothing_per_call_beyond_the_inner_service() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _timers = runtime.enter();
    for pending_once in [false, true] {
        let inner = Echo { pending_once };
        let bare = allocations_per_call(inner);
        let stacked = allocations_per_call(full_stack(inner));
        let balanced = allocations_per_call(RoundRobin::new([("a", inner), ("b", inner)]));
        // The counter works: a service that boxes its future allocates once per call.
        let boxing = allocations_per_call(tower::util::BoxService::new(inner));
        assert_eq!(boxing, 1.0, "the control, pending once: {pending_once}");
        assert_eq!(bare, 0.0, "pending once: {pending_once}");
        assert_eq!(stacked, bare, "full stack, pending once: {pending_once}");
        assert_eq!(balanced, bare, "round robin, pending once: {pending_once}");
    }
}
