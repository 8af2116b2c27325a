//! How an open breaker finds its endpoint back: the active health check, the maximum half-open
//! wait, and calls a hedge abandoned. On a paused clock with the scripted backend of `tests`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio_test::{assert_pending, task};
use tower::ServiceExt;

use super::tests::{Backend, Mode, breaker, consecutive, is_open_error, send};
use super::*;

/// A health check answering as `healthy` says, counting its runs.
fn check(healthy: &Arc<AtomicBool>, runs: &Arc<AtomicUsize>) -> HealthCheck {
    let (healthy, runs) = (healthy.clone(), runs.clone());
    HealthCheck::new(move || {
        runs.fetch_add(1, Ordering::SeqCst);
        let healthy = healthy.load(Ordering::SeqCst);
        async move { if healthy { Ok(()) } else { Err("503") } }
    })
    .every(Duration::from_millis(250))
    .jitter(0.0)
}

#[tokio::test(start_paused = true)]
async fn a_passing_health_check_lets_a_probe_through_before_the_open_duration() {
    let backend = Backend::new(Mode::Fail);
    let (healthy, runs) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let mut service = breaker(consecutive(1, Duration::from_secs(30)), &backend)
        .with_health_check(check(&healthy, &runs))
        .unwrap();
    let handle = service.handle();
    send(&mut service).await.unwrap_err();
    assert_eq!(handle.state(), State::Open);

    // A millisecond past each check, so the check's task has run when the test looks.
    tokio::time::sleep(Duration::from_millis(1001)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 4, "checked every 250 ms");
    assert_eq!(handle.state(), State::Open, "failing checks keep it open");

    healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(handle.state(), State::HalfOpen);
    let change = handle.metrics().last_change.unwrap();
    assert_eq!(change.reason, TransitionReason::HealthCheckPassed);

    backend.set(Mode::Succeed);
    send(&mut service).await.expect("the probe goes through");
    assert_eq!(handle.state(), State::Closed);
    let checks = runs.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        checks,
        "no checks while closed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_after_a_passing_check_reopens_and_checks_again() {
    let backend = Backend::new(Mode::Fail);
    let (healthy, runs) = (Arc::new(AtomicBool::new(true)), Arc::default());
    let mut service = breaker(consecutive(1, Duration::from_secs(30)), &backend)
        .with_health_check(check(&healthy, &runs))
        .unwrap();
    let handle = service.handle();
    send(&mut service).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(251)).await;
    assert_eq!(handle.state(), State::HalfOpen);

    // The health path answers but the real route still fails: the probe decides.
    send(&mut service).await.unwrap_err();
    assert_eq!(handle.state(), State::Open);
    assert_eq!(
        handle.metrics().last_change.unwrap().reason,
        TransitionReason::ProbeFailed
    );
    tokio::time::sleep(Duration::from_millis(251)).await;
    assert_eq!(
        handle.state(),
        State::HalfOpen,
        "the next open period is checked too"
    );
}

#[tokio::test(start_paused = true)]
async fn the_check_stops_when_the_breaker_is_dropped() {
    let backend = Backend::new(Mode::Fail);
    let (healthy, runs) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let mut service = breaker(consecutive(1, Duration::from_secs(30)), &backend)
        .with_health_check(check(&healthy, &runs))
        .unwrap();
    send(&mut service).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(501)).await;
    let checks = runs.load(Ordering::SeqCst);
    assert_eq!(checks, 2);
    drop(service);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs.load(Ordering::SeqCst), checks);
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_never_reports_back_reopens_after_the_maximum_wait() {
    let backend = Backend::new(Mode::Fail);
    let config = CircuitBreakerConfig::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .open_jitter(0.0)
        .half_open_max_wait(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut service = breaker(config, &backend);
    let handle = service.handle();
    send(&mut service).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;

    backend.set(Mode::Hang);
    let mut stuck_probe = task::spawn(service.clone().oneshot(()));
    assert_pending!(stuck_probe.poll());
    assert_eq!(handle.state(), State::HalfOpen);

    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert!(is_open_error(&send(&mut service).await), "still waiting");
    assert_eq!(handle.state(), State::HalfOpen);

    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(is_open_error(&send(&mut service).await));
    assert_eq!(handle.state(), State::Open, "gave up on the stuck probe");
    assert_eq!(
        handle.metrics().last_change.unwrap().reason,
        TransitionReason::ProbeTimedOut
    );

    // The stuck probe's late outcome belongs to a past period and changes nothing.
    drop(stuck_probe);
    tokio::time::advance(Duration::from_secs(2)).await;
    backend.set(Mode::Succeed);
    send(&mut service)
        .await
        .expect("a fresh probe after the open duration");
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_call_counts_as_a_failure_and_a_cancelled_one_does_not() {
    let backend = Backend::new(Mode::Hang);
    let mut service = breaker(consecutive(2, Duration::from_secs(5)), &backend);
    let handle = service.handle();

    let mut cancelled = task::spawn(service.clone().oneshot(()));
    assert_pending!(cancelled.poll());
    drop(cancelled);
    assert_eq!(handle.metrics().failures, 0, "a client that went away");

    for _ in 0..2 {
        let mut lost = task::spawn(service.ready().await.unwrap().call(()));
        assert_pending!(lost.poll());
        crate::call_scope::abandon::abandon(|| drop(lost));
    }
    assert_eq!(handle.metrics().failures, 2);
    assert_eq!(handle.state(), State::Open, "two lost races in a row");
    assert_eq!(backend.calls(), 3);
}
