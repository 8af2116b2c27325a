//! Behaviour of the breaker, on a paused clock with a scripted inner service.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok, task};
use tower::{Service, ServiceExt};

use super::*;

/// What the scripted backend does with the next calls.
#[derive(Clone, Copy, Debug)]
pub(super) enum Mode {
    Succeed,
    Fail,
    SucceedAfter(Duration),
    Hang,
}

#[derive(Clone)]
pub(super) struct Backend {
    calls: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
}

impl Backend {
    pub(super) fn new(mode: Mode) -> Self {
        Self {
            calls: Arc::new(AtomicUsize::new(0)),
            mode: Arc::new(Mutex::new(mode)),
        }
    }

    pub(super) fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub(super) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<()> for Backend {
    type Response = ();
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<(), BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mode = *self.mode.lock().unwrap();
        Box::pin(async move {
            match mode {
                Mode::Succeed => Ok(()),
                Mode::Fail => Err("backend failed".into()),
                Mode::SucceedAfter(delay) => {
                    tokio::time::sleep(delay).await;
                    Ok(())
                }
                Mode::Hang => std::future::pending().await,
            }
        })
    }
}

/// A breaker used alone, failing `call` with `CircuitOpen` while open: most of these tests look
/// at the refusals.
pub(super) fn breaker(config: CircuitBreakerConfig, backend: &Backend) -> CircuitBreaker<Backend> {
    gated(config, backend).reject_when_open()
}

/// A breaker as built by default: not ready while it admits no call.
pub(super) fn gated(config: CircuitBreakerConfig, backend: &Backend) -> CircuitBreaker<Backend> {
    CircuitBreakerLayer::new(config)
        .named("test")
        .layer(backend.clone())
}

use tower_layer::Layer;

pub(super) fn consecutive(n: u32, open: Duration) -> CircuitBreakerConfig {
    CircuitBreakerConfig::builder()
        .consecutive_failures(n)
        .open_duration(open)
        .open_jitter(0.0)
        .build()
        .unwrap()
}

pub(super) async fn send(service: &mut CircuitBreaker<Backend>) -> Result<(), BoxError> {
    service.ready().await?.call(()).await
}

pub(super) fn is_open_error(result: &Result<(), BoxError>) -> bool {
    matches!(result, Err(error) if error.downcast_ref::<CircuitOpen>().is_some())
}

#[tokio::test(start_paused = true)]
async fn opens_after_exactly_n_consecutive_failures() {
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(consecutive(5, Duration::from_secs(5)), &backend);
    for attempt in 1..=4 {
        assert!(send(&mut service).await.is_err());
        assert_eq!(
            service.handle().state(),
            State::Closed,
            "still closed after {attempt} failures"
        );
    }
    assert!(send(&mut service).await.is_err());
    assert_eq!(service.handle().state(), State::Open);
    assert_eq!(backend.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_failure_count() {
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(consecutive(3, Duration::from_secs(5)), &backend);
    for _ in 0..2 {
        send(&mut service).await.unwrap_err();
    }
    backend.set(Mode::Succeed);
    send(&mut service).await.unwrap();
    assert_eq!(service.handle().metrics().consecutive_failures, 0);
    backend.set(Mode::Fail);
    for _ in 0..2 {
        send(&mut service).await.unwrap_err();
    }
    assert_eq!(
        service.handle().state(),
        State::Closed,
        "the streak restarted after the success"
    );
    send(&mut service).await.unwrap_err();
    assert_eq!(service.handle().state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_waits_for_the_minimum_number_of_calls() {
    let config = CircuitBreakerConfig::builder()
        .without_consecutive_failures()
        .failure_rate(0.5)
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(10)
        .build()
        .unwrap();
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(config, &backend);
    for _ in 0..9 {
        send(&mut service).await.unwrap_err();
    }
    assert_eq!(
        service.handle().state(),
        State::Closed,
        "9 calls are below the floor of 10, even all failed"
    );
    send(&mut service).await.unwrap_err();
    assert_eq!(service.handle().state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_below_the_threshold_does_not_trip() {
    let config = CircuitBreakerConfig::builder()
        .without_consecutive_failures()
        .failure_rate(0.5)
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(10)
        .build()
        .unwrap();
    let backend = Backend::new(Mode::Succeed);
    let mut service = breaker(config, &backend);
    for i in 0..40 {
        backend.set(if i % 3 == 0 {
            Mode::Fail
        } else {
            Mode::Succeed
        });
        let _ = send(&mut service).await;
    }
    assert_eq!(
        service.handle().state(),
        State::Closed,
        "a third failing stays under one half"
    );
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let config = CircuitBreakerConfig::builder()
        .without_consecutive_failures()
        .failure_rate(0.6)
        .sliding_window(SlidingWindow::Time(Duration::from_secs(10)))
        .minimum_calls(5)
        .build()
        .unwrap();
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(config, &backend);
    for _ in 0..4 {
        send(&mut service).await.unwrap_err();
    }
    // Those four failures slide out of the window; what follows is mostly healthy.
    tokio::time::advance(Duration::from_secs(11)).await;
    backend.set(Mode::Succeed);
    for _ in 0..3 {
        send(&mut service).await.unwrap();
    }
    backend.set(Mode::Fail);
    send(&mut service).await.unwrap_err();
    send(&mut service).await.unwrap_err();
    assert_eq!(
        service.handle().state(),
        State::Closed,
        "2 of 5 recent calls failed"
    );
    send(&mut service).await.unwrap_err();
    send(&mut service).await.unwrap_err();
    assert_eq!(
        service.handle().state(),
        State::Closed,
        "4 of 7 recent calls failed: under 0.6"
    );
    send(&mut service).await.unwrap_err();
    assert_eq!(
        service.handle().state(),
        State::Open,
        "5 of 8 recent calls failed"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_it() {
    let config = CircuitBreakerConfig::builder()
        .without_consecutive_failures()
        .slow_call_rate(Duration::from_millis(100), 0.5)
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(4)
        .build()
        .unwrap();
    let backend = Backend::new(Mode::SucceedAfter(Duration::from_millis(50)));
    let mut service = breaker(config, &backend);
    for _ in 0..4 {
        send(&mut service).await.unwrap();
    }
    assert_eq!(
        service.handle().state(),
        State::Closed,
        "fast calls are fine"
    );
    backend.set(Mode::SucceedAfter(Duration::from_millis(150)));
    for _ in 0..3 {
        send(&mut service).await.unwrap();
    }
    assert_eq!(service.handle().state(), State::Closed, "3 slow of 7");
    send(&mut service).await.unwrap();
    assert_eq!(
        service.handle().state(),
        State::Open,
        "4 slow of 8 reaches one half, although every call succeeded"
    );
    assert_eq!(service.handle().metrics().slow_calls, 4);
}

#[tokio::test(start_paused = true)]
async fn open_rejects_without_calling_the_inner_service() {
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(consecutive(2, Duration::from_secs(5)), &backend);
    for _ in 0..2 {
        send(&mut service).await.unwrap_err();
    }
    for _ in 0..10 {
        let result = send(&mut service).await;
        assert!(is_open_error(&result));
    }
    assert_eq!(backend.calls(), 2, "rejected calls never reach the backend");
    let metrics = service.handle().metrics();
    assert_eq!((metrics.failures, metrics.rejected), (2, 10));

    let error = send(&mut service).await.unwrap_err();
    let open = error.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(
        open.retry_after(),
        Some(Duration::from_secs(5)),
        "no time passed since it opened"
    );
    assert_eq!(
        open.to_string(),
        "circuit breaker test is open; next probe in 5.0s"
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_after_the_open_duration() {
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(consecutive(1, Duration::from_secs(5)), &backend);
    send(&mut service).await.unwrap_err();
    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert!(
        is_open_error(&send(&mut service).await),
        "one millisecond early"
    );
    assert_eq!(backend.calls(), 1);

    tokio::time::advance(Duration::from_millis(1)).await;
    backend.set(Mode::Hang);
    let mut probe = task::spawn(service.clone().oneshot(()));
    assert_pending!(probe.poll());
    assert_eq!(service.handle().state(), State::HalfOpen);
    assert_eq!(backend.calls(), 2, "the probe reached the backend");
}

#[tokio::test(start_paused = true)]
async fn exactly_k_of_100_concurrent_callers_probe() {
    let config = CircuitBreakerConfig::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .half_open_probes(3)
        .build()
        .unwrap();
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(config, &backend);
    send(&mut service).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;
    backend.set(Mode::Hang);

    // 100 threads call at the same instant; their futures are kept alive, so no permit returns.
    // Each thread enters the runtime so that it reads the same paused clock.
    let start = Barrier::new(100);
    let runtime = tokio::runtime::Handle::current();
    let futures: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let mut caller = service.clone();
                let start = &start;
                let runtime = runtime.clone();
                scope.spawn(move || {
                    let _clock = runtime.enter();
                    start.wait();
                    caller.call(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    assert_eq!(
        backend.calls(),
        1 + 3,
        "exactly three probes reached the backend"
    );
    assert_eq!(service.handle().state(), State::HalfOpen);
    let mut rejected = 0;
    for future in futures {
        let mut future = task::spawn(future);
        match future.poll() {
            Poll::Ready(result) => {
                assert!(is_open_error(&result));
                rejected += 1;
            }
            Poll::Pending => {}
        }
    }
    assert_eq!(rejected, 97);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_gives_its_permit_back() {
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(consecutive(1, Duration::from_secs(1)), &backend);
    send(&mut service).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;

    backend.set(Mode::Hang);
    let mut probe = task::spawn(service.clone().oneshot(()));
    assert_pending!(probe.poll());
    assert!(
        is_open_error(&send(&mut service).await),
        "the only permit is taken"
    );
    drop(probe);

    backend.set(Mode::Succeed);
    send(&mut service)
        .await
        .expect("the dropped probe's permit went back");
    assert_eq!(service.handle().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_reserved_permit_on_a_dropped_clone_goes_back() {
    let backend = Backend::new(Mode::Fail);
    let mut service = gated(consecutive(1, Duration::from_secs(1)), &backend);
    send(&mut service).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;

    let mut reserving = service.clone();
    assert!(
        task::spawn(()).enter(|cx, _| reserving.poll_ready(cx).is_ready()),
        "the probe permit is reserved on this clone"
    );
    assert!(!service.handle().admits());
    drop(reserving);
    assert!(service.handle().admits(), "dropping the clone released it");
}

#[tokio::test(start_paused = true)]
async fn probe_success_closes_it() {
    let backend = Backend::new(Mode::Fail);
    let config = CircuitBreakerConfig::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .half_open_probes(2)
        .build()
        .unwrap();
    let mut service = breaker(config, &backend);
    send(&mut service).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;
    backend.set(Mode::Succeed);
    send(&mut service).await.unwrap();
    assert_eq!(
        service.handle().state(),
        State::HalfOpen,
        "one of two probes succeeded"
    );
    send(&mut service).await.unwrap();
    assert_eq!(service.handle().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn probe_failure_reopens_for_longer_each_time() {
    let backend = Backend::new(Mode::Fail);
    let config = CircuitBreakerConfig::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .max_open_duration(Duration::from_secs(3))
        .open_jitter(0.0)
        .build()
        .unwrap();
    let mut service = breaker(config, &backend);
    send(&mut service).await.unwrap_err();
    let mut open_for = Vec::new();
    for _ in 0..4 {
        let next_probe = service.handle().metrics().next_probe_in.unwrap();
        open_for.push(next_probe);
        tokio::time::advance(next_probe).await;
        send(&mut service).await.unwrap_err(); // the probe fails
        assert_eq!(service.handle().state(), State::Open);
    }
    open_for.push(service.handle().metrics().next_probe_in.unwrap());
    let secs: Vec<_> = open_for.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [1, 2, 3, 3, 3], "doubling, capped at the maximum");

    // A success resets the growth.
    tokio::time::advance(Duration::from_secs(3)).await;
    backend.set(Mode::Succeed);
    send(&mut service).await.unwrap();
    backend.set(Mode::Fail);
    send(&mut service).await.unwrap_err();
    assert_eq!(
        service.handle().metrics().next_probe_in,
        Some(Duration::from_secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_open_durations_stay_within_bounds_and_follow_the_seed() {
    let config = |seed| {
        CircuitBreakerConfig::builder()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(10))
            .open_jitter(0.5)
            .seed(seed)
            .build()
            .unwrap()
    };
    let mut first = Vec::new();
    for run in 0..2 {
        let backend = Backend::new(Mode::Fail);
        let mut service = breaker(config(42), &backend);
        send(&mut service).await.unwrap_err();
        let open_for = service.handle().metrics().next_probe_in.unwrap();
        assert!(open_for >= Duration::from_secs(5) && open_for <= Duration::from_secs(10));
        if run == 0 {
            first.push(open_for);
        } else {
            assert_eq!(first[0], open_for, "same seed, same duration");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_admitted_before_a_trip_does_not_count_after_it() {
    let backend = Backend::new(Mode::SucceedAfter(Duration::from_secs(10)));
    let mut service = breaker(consecutive(1, Duration::from_secs(1)), &backend);
    let mut slow = task::spawn(service.clone().oneshot(()));
    assert_pending!(slow.poll());

    backend.set(Mode::Fail);
    send(&mut service).await.unwrap_err();
    assert_eq!(service.handle().state(), State::Open);
    tokio::time::advance(Duration::from_secs(1)).await;
    backend.set(Mode::Hang);
    let mut probe = task::spawn(service.clone().oneshot(()));
    assert_pending!(probe.poll());

    // The old call succeeds now, while the breaker is half-open: it must not close it.
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_ready_ok!(slow.poll());
    assert_eq!(service.handle().state(), State::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn forced_states_override_the_policy() {
    let backend = Backend::new(Mode::Succeed);
    let mut service = breaker(consecutive(1, Duration::from_secs(1)), &backend);
    let handle = service.handle();

    handle.force_open();
    assert!(is_open_error(&send(&mut service).await));
    tokio::time::advance(Duration::from_secs(3600)).await;
    let error = send(&mut service).await.unwrap_err();
    let open = error.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(
        (open.state(), open.retry_after()),
        (State::ForcedOpen, None),
        "time does not reopen it"
    );
    assert_eq!(backend.calls(), 0);

    handle.force_closed();
    backend.set(Mode::Fail);
    for _ in 0..10 {
        send(&mut service).await.unwrap_err();
    }
    assert_eq!(
        handle.state(),
        State::ForcedClosed,
        "a forced-closed breaker never trips"
    );

    handle.reset();
    assert_eq!(handle.state(), State::Closed);
    send(&mut service).await.unwrap_err();
    assert_eq!(
        handle.state(),
        State::Open,
        "after a reset the policy applies again"
    );
}

#[tokio::test(start_paused = true)]
async fn events_arrive_in_order_with_reasons() {
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(consecutive(2, Duration::from_secs(1)), &backend);
    let handle = service.handle();
    let mut events = handle.subscribe();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    handle.on_state_change(move |change| sink.lock().unwrap().push((change.from, change.to)));

    send(&mut service).await.unwrap_err();
    send(&mut service).await.unwrap_err(); // trips
    tokio::time::advance(Duration::from_secs(1)).await;
    send(&mut service).await.unwrap_err(); // half-open, the probe fails
    tokio::time::advance(Duration::from_secs(2)).await;
    backend.set(Mode::Succeed);
    send(&mut service).await.unwrap(); // half-open, the probe succeeds
    handle.force_open();

    let mut received = Vec::new();
    while let Ok(change) = events.try_recv() {
        received.push(change);
    }
    let transitions: Vec<_> = received
        .iter()
        .map(|change| (change.from, change.to, change.reason))
        .collect();
    use State::*;
    assert_eq!(
        transitions,
        [
            (
                Closed,
                Open,
                TransitionReason::Tripped(TripReason::ConsecutiveFailures(2))
            ),
            (Open, HalfOpen, TransitionReason::OpenDurationElapsed),
            (HalfOpen, Open, TransitionReason::ProbeFailed),
            (Open, HalfOpen, TransitionReason::OpenDurationElapsed),
            (HalfOpen, Closed, TransitionReason::ProbesSucceeded(1)),
            (Closed, ForcedOpen, TransitionReason::ForcedOpen),
        ]
    );
    assert_eq!(received[0].open_for, Some(Duration::from_secs(1)));
    assert_eq!(received[2].open_for, Some(Duration::from_secs(2)));
    assert!(received.windows(2).all(|pair| pair[0].at <= pair[1].at));
    assert_eq!(
        received[0].to_string(),
        "circuit breaker test: closed -> open (2 consecutive failures); next probe in 1.0s"
    );
    let listened: Vec<_> = transitions
        .iter()
        .map(|(from, to, _)| (*from, *to))
        .collect();
    assert_eq!(
        *seen.lock().unwrap(),
        listened,
        "the callback saw the same changes in the same order"
    );
    assert_eq!(handle.metrics().last_change.unwrap().to, ForcedOpen);
}

#[tokio::test(start_paused = true)]
async fn rejected_future_is_ready_at_once() {
    let backend = Backend::new(Mode::Fail);
    let mut service = breaker(consecutive(1, Duration::from_secs(1)), &backend);
    send(&mut service).await.unwrap_err();
    let mut rejected = task::spawn(service.call(()));
    assert_ready_err!(rejected.poll());
}

#[test]
fn nonsense_configuration_is_a_clear_error() {
    let cases: Vec<(CircuitBreakerConfigBuilder, &str)> = vec![
        (
            CircuitBreakerConfig::builder().consecutive_failures(0),
            "consecutive failures must be at least 1",
        ),
        (
            CircuitBreakerConfig::builder().failure_rate(1.5),
            "failure rate must be in (0, 1]",
        ),
        (
            CircuitBreakerConfig::builder().failure_rate(0.0),
            "failure rate must be in (0, 1]",
        ),
        (
            CircuitBreakerConfig::builder()
                .failure_rate(0.5)
                .sliding_window(SlidingWindow::Count(0)),
            "at least 1 call",
        ),
        (
            CircuitBreakerConfig::builder()
                .failure_rate(0.5)
                .sliding_window(SlidingWindow::Time(Duration::ZERO)),
            "at least 10ms",
        ),
        (
            CircuitBreakerConfig::builder()
                .failure_rate(0.5)
                .sliding_window(SlidingWindow::Count(5))
                .minimum_calls(10),
            "never reaches the minimum",
        ),
        (
            CircuitBreakerConfig::builder().half_open_probes(0),
            "at least 1 probe",
        ),
        (
            CircuitBreakerConfig::builder().open_duration(Duration::ZERO),
            "greater than zero",
        ),
        (
            CircuitBreakerConfig::builder().open_jitter(2.0),
            "jitter must be between 0 and 1",
        ),
        (
            CircuitBreakerConfig::builder().without_consecutive_failures(),
            "no trip condition",
        ),
        (
            CircuitBreakerConfig::builder().slow_call_rate(Duration::from_secs(1), 7.0),
            "slow-call rate",
        ),
    ];
    for (builder, expected) in cases {
        let error = builder.build().unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{error} should mention {expected:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("invalid circuit breaker configuration: ")
        );
    }
}
