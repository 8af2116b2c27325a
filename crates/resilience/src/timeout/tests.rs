//! Behaviour of the attempt timeout and the overall deadline, on a paused clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready, task};
use tower::retry::Retry;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use super::*;
use crate::backoff::ExponentialBackoff;
use crate::retry::RetryPolicy;

fn answering_after(
    delay: Duration,
) -> impl Service<(), Response = &'static str, Error = BoxError, Future: Send> + Clone {
    service_fn(move |()| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, BoxError>("answer")
    })
}

#[tokio::test(start_paused = true)]
async fn an_attempt_fails_with_elapsed_at_its_limit() {
    let start = Instant::now();
    let service = Timeout::new(
        answering_after(Duration::from_secs(5)),
        Duration::from_millis(300),
    );
    let error = service.oneshot(()).await.unwrap_err();
    let elapsed = error.downcast_ref::<Elapsed>().expect("an Elapsed");
    assert_eq!(elapsed.limit(), Duration::from_millis(300));
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert_eq!(error.to_string(), "attempt timed out after 300ms");
}

#[tokio::test(start_paused = true)]
async fn a_quick_answer_passes() {
    let service = Timeout::new(
        answering_after(Duration::from_millis(299)),
        Duration::from_millis(300),
    );
    assert_eq!(service.oneshot(()).await.unwrap(), "answer");
}

#[tokio::test(start_paused = true)]
async fn the_limit_counts_from_the_call_not_the_first_poll() {
    let mut service = Timeout::new(
        answering_after(Duration::from_secs(5)),
        Duration::from_millis(300),
    );
    let mut response = task::spawn(service.call(()));
    tokio::time::advance(Duration::from_millis(299)).await;
    assert_pending!(response.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    let error = assert_ready!(response.poll()).unwrap_err();
    assert!(error.is::<Elapsed>());
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_retries_and_backoff() {
    let start = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let log = attempts.clone();
    // Every attempt hangs until its own timeout; retries never stop on their own.
    let endpoint = service_fn(move |()| {
        log.lock().unwrap().push(start.elapsed());
        std::future::pending::<Result<(), BoxError>>()
    });
    let policy = RetryPolicy::builder()
        .max_attempts(100)
        .backoff(
            ExponentialBackoff::new(Duration::from_millis(100), Duration::from_millis(100))
                .with_jitter(0.0),
        )
        .without_budget()
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(1)))
        .layer(tower::retry::RetryLayer::new(policy))
        .layer(TimeoutLayer::new(Duration::from_millis(300)))
        .service(endpoint);
    let error = service.oneshot(()).await.unwrap_err();
    assert!(error.is::<DeadlineExceeded>(), "{error}");
    assert_eq!(error.to_string(), "request deadline of 1000ms exceeded");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "not a moment later"
    );
    let ms: Vec<_> = attempts
        .lock()
        .unwrap()
        .iter()
        .map(Duration::as_millis)
        .collect();
    assert_eq!(
        ms,
        [0, 400, 800],
        "attempts of 300 ms with 100 ms pauses, cut at 1 s"
    );
}

#[tokio::test(start_paused = true)]
async fn with_the_policy_told_the_deadline_the_last_upstream_error_comes_back_early() {
    let start = Instant::now();
    let endpoint = service_fn(|()| std::future::pending::<Result<(), BoxError>>());
    let policy = RetryPolicy::builder()
        .max_attempts(100)
        .backoff(
            ExponentialBackoff::new(Duration::from_millis(100), Duration::from_millis(100))
                .with_jitter(0.0),
        )
        .deadline(Duration::from_secs(1))
        .min_attempt_time(Duration::from_millis(300))
        .without_budget()
        .build()
        .unwrap();
    let service = Deadline::new(
        Retry::new(policy, Timeout::new(endpoint, Duration::from_millis(300))),
        Duration::from_secs(1),
    );
    let error = service.oneshot(()).await.unwrap_err();
    // Attempts at 0 and 400 ms time out; at 700 ms only 300 ms remain, not enough for 100 ms of
    // backoff plus a 300 ms attempt, so the attempt's own timeout is returned.
    assert!(error.is::<Elapsed>(), "{error}");
    assert_eq!(start.elapsed(), Duration::from_millis(700));
}

/// Polls its inner future with a waker of its own that wakes the caller's, as
/// `FuturesUnordered` does for each of its futures.
struct OwnWaker<F>(Pin<Box<F>>);

struct Forward(std::task::Waker);

impl std::task::Wake for Forward {
    fn wake(self: Arc<Self>) {
        self.0.wake_by_ref();
    }
}

impl<F: Future> Future for OwnWaker<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let waker = std::task::Waker::from(Arc::new(Forward(cx.waker().clone())));
        self.0
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
    }
}

fn timers_armed() -> usize {
    future::OWN_TIMERS.get()
}

#[tokio::test(start_paused = true)]
async fn a_timeout_inside_a_deadline_shares_its_timer_and_still_fires_on_time() {
    let start = Instant::now();
    let endpoint = service_fn(|()| std::future::pending::<Result<(), BoxError>>());
    let mut service = Deadline::new(
        Timeout::new(endpoint, Duration::from_millis(300)),
        Duration::from_secs(1),
    );
    let before = timers_armed();
    let mut response = task::spawn(service.call(()));
    assert_pending!(response.poll());
    assert_eq!(timers_armed() - before, 1, "one timer for both limits");
    tokio::time::advance(Duration::from_millis(299)).await;
    assert_pending!(response.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(
        response.is_woken(),
        "the deadline's timer woke the task for the attempt"
    );
    let error = assert_ready!(response.poll()).unwrap_err();
    assert!(error.is::<Elapsed>(), "{error}");
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert_eq!(timers_armed() - before, 1);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_sooner_than_the_attempt_fails_the_request_at_the_deadline() {
    let start = Instant::now();
    let endpoint = service_fn(|()| std::future::pending::<Result<(), BoxError>>());
    let service = Deadline::new(
        Timeout::new(endpoint, Duration::from_secs(5)),
        Duration::from_millis(700),
    );
    let error = service.oneshot(()).await.unwrap_err();
    assert!(error.is::<DeadlineExceeded>(), "{error}");
    assert_eq!(start.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_woken_by_another_waker_keeps_a_timer_of_its_own() {
    let start = Instant::now();
    let attempt = Timeout::new(
        service_fn(|()| std::future::pending::<Result<(), BoxError>>()),
        Duration::from_millis(300),
    );
    let endpoint = service_fn(move |()| OwnWaker(Box::pin(attempt.clone().oneshot(()))));
    let mut service = Deadline::new(endpoint, Duration::from_secs(1));
    let before = timers_armed();
    let mut response = task::spawn(service.call(()));
    assert_pending!(response.poll());
    assert_eq!(
        timers_armed() - before,
        2,
        "the deadline's and the attempt's"
    );
    tokio::time::advance(Duration::from_millis(300)).await;
    let error = assert_ready!(response.poll()).unwrap_err();
    assert!(error.is::<Elapsed>(), "{error}");
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}
