//! Behaviour of the round-robin balancer over endpoints with and without breakers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use tokio_test::{assert_ready, task};
use tower::{Service, ServiceExt};
use tower_layer::Layer;

use super::*;
use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, State};
use crate::error::BoxError;

/// An endpoint that records which endpoint answered, and fails or hangs on demand.
#[derive(Clone)]
struct Named {
    name: &'static str,
    calls: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    hanging: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<&'static str>>>,
}

impl Service<()> for Named {
    type Response = &'static str;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<&'static str, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(self.name);
        let name = self.name;
        if self.hanging.load(Ordering::SeqCst) {
            return std::future::pending().boxed();
        }
        let failing = self.failing.load(Ordering::SeqCst);
        async move {
            if failing {
                Err("down".into())
            } else {
                Ok(name)
            }
        }
        .boxed()
    }
}

struct Fixture {
    endpoints: Vec<Named>,
    log: Arc<Mutex<Vec<&'static str>>>,
}

impl Fixture {
    fn new(names: &[&'static str]) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let endpoints = names
            .iter()
            .map(|&name| Named {
                name,
                calls: Arc::default(),
                failing: Arc::default(),
                hanging: Arc::default(),
                log: log.clone(),
            })
            .collect();
        Self { endpoints, log }
    }

    fn endpoint(&self, name: &str) -> &Named {
        self.endpoints
            .iter()
            .find(|endpoint| endpoint.name == name)
            .unwrap()
    }

    fn breakers(
        &self,
        config: &CircuitBreakerConfig,
    ) -> Vec<(&'static str, CircuitBreaker<Named>)> {
        self.endpoints
            .iter()
            .map(|endpoint| {
                (
                    endpoint.name,
                    CircuitBreakerLayer::new(config.clone())
                        .named(endpoint.name)
                        .layer(endpoint.clone()),
                )
            })
            .collect()
    }

    fn take_log(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn config() -> CircuitBreakerConfig {
    CircuitBreakerConfig::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(10))
        .open_jitter(0.0)
        .build()
        .unwrap()
}

async fn send<S>(balancer: &mut RoundRobin<&'static str, S>) -> Result<&'static str, BoxError>
where
    S: Service<(), Response = &'static str, Error = BoxError> + Clone,
{
    balancer.ready().await?.call(()).await
}

#[tokio::test(start_paused = true)]
async fn rotates_in_exact_turn_over_three_endpoints() {
    let fixture = Fixture::new(&["a", "b", "c"]);
    let mut balancer = RoundRobin::new(fixture.endpoints.iter().map(|e| (e.name, e.clone())));
    for _ in 0..9 {
        send(&mut balancer).await.unwrap();
    }
    assert_eq!(
        fixture.take_log(),
        ["a", "b", "c", "a", "b", "c", "a", "b", "c"]
    );
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_turn() {
    let fixture = Fixture::new(&["a", "b"]);
    let balancer = RoundRobin::new(fixture.endpoints.iter().map(|e| (e.name, e.clone())));
    for _ in 0..4 {
        balancer.clone().oneshot(()).await.unwrap();
    }
    assert_eq!(fixture.take_log(), ["a", "b", "a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn an_open_endpoint_gets_no_calls() {
    let fixture = Fixture::new(&["a", "b", "c"]);
    let endpoints = fixture.breakers(&config());
    endpoints[1].1.handle().force_open();
    let mut balancer = RoundRobin::new(endpoints);
    for _ in 0..6 {
        send(&mut balancer).await.unwrap();
    }
    assert_eq!(
        fixture.take_log(),
        ["a", "c", "a", "c", "a", "c"],
        "b is skipped and the others keep strict turns"
    );
    assert_eq!(fixture.endpoint("b").calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_tripped_endpoint_leaves_the_rotation_until_it_recovers() {
    let fixture = Fixture::new(&["a", "b"]);
    let endpoints = fixture.breakers(&config());
    let breaker_b = endpoints[1].1.handle();
    let mut balancer = RoundRobin::new(endpoints);
    fixture.endpoint("b").failing.store(true, Ordering::SeqCst);
    send(&mut balancer).await.unwrap();
    send(&mut balancer).await.unwrap_err();
    assert_eq!(breaker_b.state(), State::Open);
    for _ in 0..4 {
        assert_eq!(send(&mut balancer).await.unwrap(), "a");
    }

    fixture.endpoint("b").failing.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(10)).await;
    fixture.take_log();
    for _ in 0..4 {
        send(&mut balancer).await.unwrap();
    }
    assert_eq!(
        breaker_b.state(),
        State::Closed,
        "the probe went to b and closed it"
    );
    assert_eq!(
        fixture
            .take_log()
            .iter()
            .filter(|name| **name == "b")
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn all_open_fails_at_once_with_no_available_endpoint() {
    let fixture = Fixture::new(&["a", "b"]);
    let endpoints = fixture.breakers(&config());
    for (_, endpoint) in &endpoints {
        endpoint.handle().force_open();
    }
    let balancer = RoundRobin::new(endpoints);
    let mut waiting = task::spawn(balancer.clone().ready_oneshot());
    assert!(
        waiting.poll().is_pending(),
        "alone, a balancer of open gated breakers waits for one to admit a call"
    );
    let mut fail_fast = FailFast::new(balancer);
    let mut ready = task::spawn(fail_fast.ready());
    assert_ready!(ready.poll()).unwrap();
    drop(ready);
    let mut response = task::spawn(fail_fast.call(()));
    let error = assert_ready!(response.poll()).unwrap_err();
    error
        .downcast_ref::<NoAvailableEndpoint>()
        .expect("a NoAvailableEndpoint");
    assert_eq!(fixture.take_log(), Vec::<&str>::new(), "nothing was called");
}

#[tokio::test(start_paused = true)]
async fn no_endpoints_at_all_is_no_available_endpoint() {
    let mut balancer: RoundRobin<&'static str, Named> = RoundRobin::new([]);
    let error = send(&mut balancer).await.unwrap_err();
    assert!(error.is::<NoAvailableEndpoint>());
}

#[tokio::test(start_paused = true)]
async fn a_half_open_probe_is_not_routed_to_two_callers() {
    let fixture = Fixture::new(&["a", "b"]);
    let endpoints = fixture.breakers(&config());
    let breaker_a = endpoints[0].1.handle();
    let mut balancer = RoundRobin::new(endpoints);
    fixture.endpoint("a").failing.store(true, Ordering::SeqCst);
    send(&mut balancer).await.unwrap_err();
    assert_eq!(breaker_a.state(), State::Open);
    send(&mut balancer).await.unwrap(); // b; the turn is back at a
    tokio::time::advance(Duration::from_secs(10)).await;

    // The first caller takes a's only probe permit and hangs; every other caller must be routed
    // to b rather than be rejected by a's breaker.
    fixture.endpoint("a").hanging.store(true, Ordering::SeqCst);
    fixture.take_log();
    let mut probe = task::spawn(balancer.clone().oneshot(()));
    assert!(probe.poll().is_pending());
    for _ in 0..5 {
        assert_eq!(balancer.clone().oneshot(()).await.unwrap(), "b");
    }
    assert_eq!(fixture.take_log(), ["a", "b", "b", "b", "b", "b"]);
}

#[tokio::test(start_paused = true)]
async fn changing_the_endpoints_keeps_the_state_of_those_that_stay() {
    let fixture = Fixture::new(&["a", "b", "c", "d"]);
    let mut endpoints = fixture.breakers(&config());
    let (d_name, d_service) = endpoints.pop().unwrap();
    let breaker_b = endpoints[1].1.handle();
    let mut balancer = RoundRobin::new(endpoints);
    let handle = balancer.handle();

    fixture.endpoint("b").failing.store(true, Ordering::SeqCst);
    send(&mut balancer).await.unwrap();
    send(&mut balancer).await.unwrap_err();
    assert_eq!(breaker_b.state(), State::Open);

    assert!(handle.remove(&"a"));
    assert!(!handle.remove(&"a"), "already gone");
    handle.insert(d_name, d_service);
    assert_eq!(handle.keys(), ["b", "c", "d"]);
    fixture.take_log();
    for _ in 0..4 {
        send(&mut balancer).await.unwrap();
    }
    assert_eq!(
        breaker_b.state(),
        State::Open,
        "b kept its open breaker through the change"
    );
    let log = fixture.take_log();
    assert!(!log.contains(&"a") && !log.contains(&"b"), "{log:?}");
    assert_eq!(log.iter().filter(|name| **name == "d").count(), 2);
    assert_eq!(balancer.len(), 3);
}

/// An endpoint that is not ready until told, to check that waiting endpoints are not lost.
#[derive(Clone)]
struct Gate {
    open: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<std::task::Waker>>>,
}

impl Service<()> for Gate {
    type Response = &'static str;
    type Error = BoxError;
    type Future = std::future::Ready<Result<&'static str, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.open.load(Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn call(&mut self, (): ()) -> Self::Future {
        std::future::ready(Ok("gate"))
    }
}

#[tokio::test(start_paused = true)]
async fn waits_for_a_busy_endpoint_instead_of_failing() {
    let gate = Gate {
        open: Arc::default(),
        waker: Arc::default(),
    };
    let mut balancer = RoundRobin::new([("gate", gate.clone())]);
    let mut ready = task::spawn(balancer.ready());
    assert!(
        ready.poll().is_pending(),
        "a busy endpoint is not an unavailable one"
    );
    gate.open.store(true, Ordering::SeqCst);
    gate.waker.lock().unwrap().take().unwrap().wake();
    assert!(ready.is_woken());
    assert_ready!(ready.poll()).unwrap();
    drop(ready);
    assert_eq!(balancer.call(()).await.unwrap(), "gate");
}

#[tokio::test(start_paused = true)]
async fn a_second_call_through_one_instance_goes_elsewhere_even_when_the_turn_points_back() {
    let fixture = Fixture::new(&["a", "b"]);
    let mut retrying = RoundRobin::new(fixture.endpoints.iter().map(|e| (e.name, e.clone())));
    let mut other = retrying.clone();
    assert_eq!(send(&mut retrying).await.unwrap(), "a");
    // Another request takes "b"'s turn, so the shared turn points at "a" again.
    assert_eq!(send(&mut other).await.unwrap(), "b");
    assert_eq!(
        send(&mut retrying).await.unwrap(),
        "b",
        "the instance that just called a goes elsewhere"
    );
    // Tower's Retry clones the balancer after the first call: the clone knows where it went.
    let mut retry_clone = retrying.clone();
    assert_eq!(send(&mut other).await.unwrap(), "a");
    assert_eq!(
        send(&mut retry_clone).await.unwrap(),
        "a",
        "turn: b; last: b"
    );
}

#[tokio::test(start_paused = true)]
async fn with_one_endpoint_admitting_a_second_call_goes_back_to_it() {
    let fixture = Fixture::new(&["a", "b"]);
    let config = config();
    fixture.endpoint("b").failing.store(true, Ordering::SeqCst);
    let mut balancer = RoundRobin::new(fixture.breakers(&config));
    let mut tripper = balancer.clone();
    send(&mut tripper).await.unwrap();
    send(&mut tripper).await.unwrap_err();
    assert_eq!(send(&mut balancer).await.unwrap(), "a");
    assert_eq!(
        send(&mut balancer).await.unwrap(),
        "a",
        "b is open: a again"
    );
}

/// Each thread calls through its own copies of the endpoints: the breakers and the turn must
/// still be the ones every thread shares.
#[test]
fn threads_share_the_breakers_and_the_turn() {
    let fixture = Fixture::new(&["a", "b", "c"]);
    let endpoints = fixture.breakers(&config());
    let breaker_b = endpoints[1].1.handle();
    let balancer = RoundRobin::new(endpoints);
    let on_a_thread_of_its_own = |sends: usize| {
        let mut balancer = balancer.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let outcomes: Vec<bool> = (0..sends)
                .map(|_| runtime.block_on(send(&mut balancer)).is_ok())
                .collect();
            outcomes
        })
        .join()
        .unwrap()
    };

    fixture.endpoint("b").failing.store(true, Ordering::SeqCst);
    assert_eq!(on_a_thread_of_its_own(2), [true, false]);
    assert_eq!(breaker_b.state(), State::Open);
    assert_eq!(fixture.take_log(), ["a", "b"]);

    assert_eq!(on_a_thread_of_its_own(4), [true; 4]);
    assert_eq!(
        fixture.take_log(),
        ["c", "a", "c", "a"],
        "the next thread takes the turn where the first left it, and skips b's open breaker"
    );
}
