//! The crate's breakers in stacks that are not the crate's own: under tower's `p2c` balancer,
//! and under `RoundRobin` with foreign layers in between. Requests and responses are `http`
//! types, so tower-http's `TraceLayer` can sit in the stack. On a paused clock.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use resilience::{
    BoxError, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, FailFast,
    NoAvailableEndpoint, RoundRobin, State,
};
use tokio::time::Instant;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

type Request = http::Request<String>;
type Response = http::Response<String>;

fn request() -> Request {
    http::Request::new(String::new())
}

/// An endpoint that answers its name, or fails while `failing` is set, counting its calls.
#[derive(Clone)]
struct Endpoint {
    name: &'static str,
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Endpoint {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            failing: Arc::default(),
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<Request> for Endpoint {
    type Response = Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (name, failing) = (self.name, self.failing.load(Ordering::SeqCst));
        async move {
            if failing {
                Err("connection refused".into())
            } else {
                Ok(http::Response::new(name.to_owned()))
            }
        }
        .boxed()
    }
}

fn breaker_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig::builder()
        .consecutive_failures(2)
        .open_duration(Duration::from_secs(5))
        .open_jitter(0.0)
        .build()
        .unwrap()
}

fn gated(endpoint: &Endpoint) -> CircuitBreaker<Endpoint> {
    CircuitBreakerLayer::new(breaker_config())
        .named(endpoint.name)
        .layer(endpoint.clone())
}

#[tokio::test(start_paused = true)]
async fn p2c_skips_an_open_breaker_until_its_open_duration_passes() {
    let endpoints = ["a", "b", "c"].map(Endpoint::new);
    let breakers: Vec<_> = endpoints.iter().map(gated).collect();
    let handles: Vec<_> = breakers.iter().map(CircuitBreaker::handle).collect();
    let discover =
        PendingRequestsDiscover::new(ServiceList::new(breakers), CompleteOnResponse::default());
    let mut balancer = FailFast::new(Balance::new(discover));

    endpoints[0].failing.store(true, Ordering::SeqCst);
    while handles[0].state() != State::Open {
        let _ = balancer.ready().await.unwrap().call(request()).await;
    }
    let calls_when_opened = endpoints[0].calls();
    for _ in 0..100 {
        let answer = balancer
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        assert_ne!(answer.body(), "a");
    }
    assert_eq!(endpoints[0].calls(), calls_when_opened, "no call reached a");

    // After the open duration, p2c is woken and a probe goes to a; it is back, and closes.
    endpoints[0].failing.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(5)).await;
    let mut answers = Vec::new();
    for _ in 0..100 {
        let answer = balancer
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        answers.push(answer.into_body());
    }
    assert!(answers.iter().any(|answer| answer == "a"), "a serves again");
    assert_eq!(handles[0].state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn with_every_breaker_open_p2c_fails_at_once_behind_fail_fast() {
    let endpoints = ["a", "b", "c"].map(Endpoint::new);
    let breakers: Vec<_> = endpoints.iter().map(gated).collect();
    for breaker in &breakers {
        breaker.handle().force_open();
    }
    let discover =
        PendingRequestsDiscover::new(ServiceList::new(breakers), CompleteOnResponse::default());
    let mut balancer = FailFast::new(Balance::new(discover));
    let started = Instant::now();
    let error = balancer
        .ready()
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap_err();
    assert!(
        error.downcast_ref::<NoAvailableEndpoint>().is_some(),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_millis(10));
    assert!(endpoints.iter().all(|endpoint| endpoint.calls() == 0));
}

/// Trips "a" behind whatever `wrap` puts between the round robin and the breakers, then checks
/// that "a" gets no more calls while "b" answers every one.
async fn skips_the_open_endpoint_through<S, W, B>(wrap: W)
where
    W: Fn(CircuitBreaker<Endpoint>) -> S,
    S: Service<Request, Response = http::Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let (a, b) = (Endpoint::new("a"), Endpoint::new("b"));
    let breaker_a = gated(&a);
    let handle_a = breaker_a.handle();
    let mut balancer = FailFast::new(RoundRobin::new([
        ("a", wrap(breaker_a)),
        ("b", wrap(gated(&b))),
    ]));
    a.failing.store(true, Ordering::SeqCst);
    while handle_a.state() != State::Open {
        let _ = balancer.ready().await.unwrap().call(request()).await;
    }
    let (a_calls, b_calls) = (a.calls(), b.calls());
    for _ in 0..20 {
        let answer = balancer.ready().await.unwrap().call(request()).await;
        assert!(answer.is_ok(), "every request is answered");
    }
    assert_eq!(a.calls(), a_calls, "no call reached the open endpoint");
    assert_eq!(b.calls(), b_calls + 20);
}

#[tokio::test(start_paused = true)]
async fn a_trace_layer_between_round_robin_and_breakers() {
    skips_the_open_endpoint_through(|breaker| {
        ServiceBuilder::new()
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .service(breaker)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn map_err_between_round_robin_and_breakers() {
    skips_the_open_endpoint_through(|breaker| {
        breaker.map_err(|error: BoxError| format!("endpoint: {error}"))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_limit_between_round_robin_and_breakers() {
    skips_the_open_endpoint_through(|breaker| {
        ServiceBuilder::new().concurrency_limit(4).service(breaker)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_box_clone_service_between_round_robin_and_breakers() {
    skips_the_open_endpoint_through(tower::util::BoxCloneService::new).await;
}
