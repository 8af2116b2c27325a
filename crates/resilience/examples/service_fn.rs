//! Run with `cargo run -p resilience --example service_fn`.
//!
//! A plain `tower::service_fn` behind retry → circuit breaker → attempt timeout in one
//! `ServiceBuilder`, no balancer. The breaker is used alone, so it is built with
//! `reject_when_open()`: once open it is still ready, and its `call` fails at once with
//! `CircuitOpen` instead of waiting in `poll_ready`.
//!
//! The classifier and the retry rules are written over `BoxError`, not the service's own error
//! type: with a `TimeoutLayer` inside the breaker, what the breaker and `Retry` see is the
//! timeout's `BoxError`, which holds either the service's error or `Elapsed`. They find the
//! service's `NotFound` with `downcast_ref`: a missing user is an answer, not a failure, so the
//! breaker does not count it and the retry does not repeat it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use resilience::retry::is_local_rejection;
use resilience::{
    BoxError, CircuitBreakerConfig, CircuitBreakerLayer, CircuitOpen, Elapsed, Outcome,
    RetryDecision, RetryPolicy, RetryRules, State, TimeoutLayer,
};
use tower::retry::RetryLayer;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// One attempt's limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);

/// The service's own answer for a user that does not exist.
#[derive(Debug)]
struct NotFound(u32);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "user {} not found", self.0)
    }
}

impl std::error::Error for NotFound {}

/// What the breaker counts: every error but `NotFound`, timeouts included.
fn classify(result: &Result<String, BoxError>) -> Outcome {
    match result {
        Err(error) if !error.is::<NotFound>() => Outcome::Failure,
        _ => Outcome::Success,
    }
}

/// What to retry: timeouts and other failures of the service, but neither a `NotFound` nor
/// the crate's own rejections (an open circuit: retrying a local "no" only spins).
#[derive(Debug, Clone, Copy)]
struct Rules;

impl RetryRules<u32, String, BoxError> for Rules {
    fn clone_request(&self, request: &u32) -> Option<u32> {
        Some(*request)
    }

    fn classify(&self, _: &u32, result: &Result<String, BoxError>) -> RetryDecision {
        match result {
            Ok(_) => RetryDecision::DoNotRetry,
            Err(error) if error.is::<NotFound>() || is_local_rejection(error.as_ref()) => {
                RetryDecision::DoNotRetry
            }
            Err(_) => RetryDecision::Retry,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // The service: user 0 does not exist; while `hanging`, every call hangs.
    let hanging = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let users = service_fn({
        let hanging = Arc::clone(&hanging);
        let calls = Arc::clone(&calls);
        move |id: u32| {
            calls.fetch_add(1, Ordering::SeqCst);
            let hanging = hanging.load(Ordering::SeqCst);
            async move {
                if hanging {
                    // Far longer than the attempt timeout, which ends the attempt first.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                match id {
                    0 => Err(NotFound(id)),
                    _ => Ok(format!("user {id}")),
                }
            }
        }
    });

    let breaker = CircuitBreakerConfig::builder()
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(30))
        .build()?;
    let retry = RetryPolicy::builder()
        .rules(Rules)
        .max_attempts(3)
        .backoff(resilience::ExponentialBackoff::new(
            Duration::from_millis(10),
            Duration::from_millis(50),
        ))
        .build()?;
    let mut service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry))
        // Alone, not under a balancer: refuse from `call` while open.
        .layer(
            CircuitBreakerLayer::new(breaker)
                .named("users")
                .with_classifier(classify)
                .reject_when_open(),
        )
        .layer(TimeoutLayer::new(ATTEMPT_TIMEOUT))
        .service(users);
    // `Retry` is outermost: the breaker is the service it wraps.
    let handle = service.get_ref().handle();
    handle.on_state_change(|change| println!("event: {change}"));

    let answer = service.ready().await?.call(1).await?;
    println!("request 1: {answer}");

    let before = calls.load(Ordering::SeqCst);
    let error = match service.ready().await?.call(0).await {
        Ok(answer) => return Err(format!("expected NotFound, got {answer:?}").into()),
        Err(error) => error,
    };
    let attempts = calls.load(Ordering::SeqCst) - before;
    println!(
        "request 0: {error} after {attempts} attempt; breaker {} with {} failures",
        handle.state(),
        handle.metrics().failures
    );
    if !error.is::<NotFound>() || attempts != 1 || handle.metrics().failures != 0 {
        return Err("a NotFound should be neither retried nor counted".into());
    }

    hanging.store(true, Ordering::SeqCst);
    println!("the service hangs from now on");
    let before = calls.load(Ordering::SeqCst);
    let error = match service.ready().await?.call(2).await {
        Ok(answer) => return Err(format!("expected a timeout, got {answer:?}").into()),
        Err(error) => error,
    };
    let attempts = calls.load(Ordering::SeqCst) - before;
    println!(
        "request 2: {error} after {attempts} attempts; breaker {}",
        handle.state()
    );
    if !error.is::<Elapsed>() || attempts != 3 || handle.state() != State::Open {
        return Err("three timed-out attempts should have opened the breaker".into());
    }

    // Open: each request fails at once, without calling the service or waiting out a timeout.
    let before = calls.load(Ordering::SeqCst);
    for id in 3..6 {
        let started = Instant::now();
        let error = match service.ready().await?.call(id).await {
            Ok(answer) => return Err(format!("expected CircuitOpen, got {answer:?}").into()),
            Err(error) => error,
        };
        let took = started.elapsed();
        let open = error
            .downcast_ref::<CircuitOpen>()
            .ok_or_else(|| format!("expected CircuitOpen, got {error}"))?;
        // Failing at once takes microseconds. Waiting would take the open duration (30 s, a
        // breaker gated on readiness) or, had the call gone through, an attempt timeout per
        // attempt (the call count below says none did); a second is far from both either way.
        let at_once = took < Duration::from_secs(1);
        println!(
            "request {id}: {open} (CircuitOpen from {}, at once: {at_once}, in {took:?})",
            open.breaker()
        );
        if !at_once {
            return Err(format!("an open breaker took {took:?} to refuse").into());
        }
    }
    let reached = calls.load(Ordering::SeqCst) - before;
    println!("while open: {reached} calls reached the service");
    if reached != 0 {
        return Err("an open breaker let a call through".into());
    }
    Ok(())
}
