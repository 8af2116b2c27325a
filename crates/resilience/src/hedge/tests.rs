//! Behaviour of the hedge over a round robin of breakers, on a paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_layer::Layer;

use super::*;
use crate::balance::RoundRobin;
use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, State};

/// An endpoint answering its name after `latency`, or never while `latency` is `None`.
#[derive(Clone)]
struct Scripted {
    name: &'static str,
    latency: Arc<Mutex<Option<Duration>>>,
    calls: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            latency: Arc::new(Mutex::new(Some(Duration::from_millis(1)))),
            calls: Arc::default(),
        }
    }

    fn set(&self, latency: Option<Duration>) {
        *self.latency.lock().unwrap() = latency;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<u32> for Scripted {
    type Response = &'static str;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<&'static str, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let latency = *self.latency.lock().unwrap();
        let name = self.name;
        Box::pin(async move {
            match latency {
                Some(latency) => {
                    tokio::time::sleep(latency).await;
                    Ok(name)
                }
                None => std::future::pending().await,
            }
        })
    }
}

type Balancer = RoundRobin<&'static str, CircuitBreaker<Scripted>>;
type Policy = fn(&u32) -> Option<u32>;

fn copy(request: &u32) -> Option<u32> {
    Some(*request)
}

struct Fixture {
    a: Scripted,
    b: Scripted,
    breakers: Vec<crate::circuit_breaker::CircuitBreakerHandle>,
    hedge: Hedge<Balancer, Policy>,
}

fn fixture(config: HedgeConfig) -> Fixture {
    let breaker = CircuitBreakerConfig::builder()
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let (a, b) = (Scripted::new("a"), Scripted::new("b"));
    let endpoints: Vec<_> = [&a, &b]
        .into_iter()
        .map(|endpoint| {
            let service = CircuitBreakerLayer::new(breaker.clone())
                .named(endpoint.name)
                .layer(endpoint.clone());
            (endpoint.name, service)
        })
        .collect();
    let breakers = endpoints.iter().map(|(_, e)| e.handle()).collect();
    let hedge = Hedge::new(RoundRobin::new(endpoints), copy as Policy, config);
    Fixture {
        a,
        b,
        breakers,
        hedge,
    }
}

fn config() -> HedgeConfig {
    HedgeConfig::builder()
        .percentile(0.9)
        .min_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(200))
        .min_samples(20)
        .window(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Sends `n` calls one after another, the last in the next window, so the hedge learns the
/// latencies of the endpoints as they are set. With `n` even, the next turn is a's.
async fn warm_up(hedge: &Hedge<Balancer, Policy>, n: u32) {
    for request in 1..n {
        hedge.clone().oneshot(request).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The first call of the new window rotates it and sets the delay.
    hedge.clone().oneshot(0).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn no_hedging_before_a_window_saw_enough_calls() {
    let f = fixture(config());
    warm_up(&f.hedge, 10).await;
    assert_eq!(
        f.hedge.metrics().delay,
        None,
        "10 calls are too few to judge"
    );
    f.a.set(None);
    let call = tokio::time::timeout(Duration::from_secs(5), f.hedge.clone().oneshot(1));
    assert!(call.await.is_err(), "a hangs and nothing hedges it");
    assert_eq!(f.hedge.metrics().hedges, 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_is_answered_by_a_copy_to_the_other_endpoint() {
    let f = fixture(config());
    warm_up(&f.hedge, 40).await;
    assert_eq!(
        f.hedge.metrics().delay,
        Some(Duration::from_millis(10)),
        "1 ms calls: the floor"
    );

    f.a.set(None);
    f.b.set(Some(Duration::from_millis(1)));
    // The next turn is a's: it hangs, and the copy goes to b after the delay.
    let (a_calls, b_calls) = (f.a.calls(), f.b.calls());
    let started = Instant::now();
    let answer = f.hedge.clone().oneshot(1).await.unwrap();
    assert_eq!(answer, "b");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(11),
        "delay + b's latency"
    );
    assert_eq!((f.a.calls(), f.b.calls()), (a_calls + 1, b_calls + 1));
    let metrics = f.hedge.metrics();
    assert_eq!((metrics.hedges, metrics.hedges_won), (1, 1));
    assert_eq!(f.breakers[0].metrics().failures, 1, "a lost the race");
}

#[tokio::test(start_paused = true)]
async fn a_hung_endpoint_trips_its_breaker_and_every_call_is_answered() {
    let f = fixture(config());
    warm_up(&f.hedge, 40).await;
    f.a.set(None);
    for request in 0..10 {
        let started = Instant::now();
        let answer = f.hedge.clone().oneshot(request).await.unwrap();
        assert_eq!(answer, "b");
        assert!(
            started.elapsed() <= Duration::from_millis(11),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        f.breakers[0].state(),
        State::Open,
        "three lost races in a row"
    );
    assert_eq!(f.breakers[1].state(), State::Closed);
    assert_eq!(
        f.hedge.metrics().hedges,
        3,
        "after it opened, a gets no calls"
    );
}

#[tokio::test(start_paused = true)]
async fn when_the_original_wins_the_copy_is_not_blamed() {
    let f = fixture(config());
    warm_up(&f.hedge, 40).await;
    // Both slow; the original (a) started first, so it answers first.
    f.a.set(Some(Duration::from_millis(15)));
    f.b.set(Some(Duration::from_millis(15)));
    assert_eq!(f.hedge.clone().oneshot(1).await.unwrap(), "a");
    let metrics = f.hedge.metrics();
    assert_eq!((metrics.hedges, metrics.hedges_won), (1, 0));
    assert_eq!(f.breakers[1].metrics().failures, 0);
    assert_eq!(f.breakers[0].metrics().failures, 0);
}

#[tokio::test(start_paused = true)]
async fn hedges_spend_the_budget_and_stop_when_it_is_spent() {
    let mut f = fixture(config());
    f.hedge = f
        .hedge
        .with_budget(Arc::new(RetryBudget::new(0.0, 1).unwrap()));
    warm_up(&f.hedge, 40).await;
    f.a.set(Some(Duration::from_millis(100)));
    f.b.set(Some(Duration::from_millis(100)));
    f.hedge.clone().oneshot(1).await.unwrap();
    f.hedge.clone().oneshot(2).await.unwrap();
    let metrics = f.hedge.metrics();
    assert_eq!(metrics.hedges, 1, "the floor's one token");
    assert_eq!(metrics.budget_exhausted, 1);
}

#[tokio::test(start_paused = true)]
async fn requests_the_policy_cannot_copy_are_never_hedged() {
    let f = fixture(config());
    warm_up(&f.hedge, 40).await;
    let never: Policy = |_| None;
    let mut unhedged = Hedge {
        inner: f.hedge.get_ref().clone(),
        policy: never,
        shared: Arc::clone(&f.hedge.shared),
    };
    f.a.set(Some(Duration::from_millis(50)));
    f.b.set(Some(Duration::from_millis(50)));
    let started = Instant::now();
    unhedged.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(f.hedge.metrics().hedges, 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_gap_forgets_what_was_measured() {
    let f = fixture(config());
    warm_up(&f.hedge, 40).await;
    assert!(f.hedge.metrics().delay.is_some());
    tokio::time::sleep(Duration::from_secs(10)).await;
    f.hedge.clone().oneshot(1).await.unwrap();
    assert_eq!(f.hedge.metrics().delay, None);
}

#[tokio::test(start_paused = true)]
async fn a_disabled_policy_measures_nothing() {
    let f = fixture(config());
    let disabled = Hedge {
        inner: f.hedge.get_ref().clone(),
        policy: None::<Policy>,
        shared: Arc::clone(&f.hedge.shared),
    };
    for request in 0..40 {
        disabled.clone().oneshot(request).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    disabled.clone().oneshot(0).await.unwrap();
    assert_eq!(
        f.hedge.metrics().delay,
        None,
        "no latency was recorded, so no window saw enough calls"
    );
    let enabled = f.hedge.clone();
    warm_up(&enabled, 40).await;
    assert!(
        enabled.metrics().delay.is_some(),
        "the same calls, measured, set a delay"
    );
}
