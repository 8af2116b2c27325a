//! Run with `cargo run -p resilience --example p2c`.
//!
//! One circuit breaker per endpoint under tower's power-of-two-choices balancer: three
//! in-process endpoints, "b" failing. Its breaker trips, and since a breaker that admits no
//! call is not ready, p2c stops picking it. `FailFast` outside answers at once when no endpoint
//! is ready at all.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use resilience::{
    BoxError, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, FailFastLayer,
    NoAvailableEndpoint, State,
};
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// How many requests may go by before "b" has failed often enough to trip: p2c picks at
/// random, so "b" is not picked on a schedule, but 1,000 requests without three picks of one of
/// three endpoints does not happen.
const MAX_REQUESTS_TO_TRIP: usize = 1_000;

/// An endpoint that answers its name, or fails if it is "b", counting the calls it receives.
fn endpoint(
    name: &'static str,
    calls: Arc<AtomicUsize>,
) -> impl Service<u32, Response = String, Error = BoxError, Future: Send> + Clone {
    service_fn(move |id: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            match name {
                "b" => Err(BoxError::from("connection refused")),
                _ => Ok(format!("request {id} answered by {name}")),
            }
        }
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let config = CircuitBreakerConfig::builder()
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(30))
        .build()?;

    let mut calls = BTreeMap::new();
    let mut breakers = Vec::new();
    for name in ["a", "b", "c"] {
        let counter = Arc::new(AtomicUsize::new(0));
        calls.insert(name, Arc::clone(&counter));
        // Under a balancer the breaker says "not now" through readiness: gate it.
        let breaker = CircuitBreakerLayer::new(config.clone())
            .named(name)
            .layer(endpoint(name, counter));
        breaker
            .handle()
            .on_state_change(|change| println!("event: {change}"));
        breakers.push(breaker);
    }
    let handles: Vec<_> = breakers.iter().map(CircuitBreaker::handle).collect();

    // p2c compares the pending requests of two random ready endpoints.
    let discover =
        PendingRequestsDiscover::new(ServiceList::new(breakers), CompleteOnResponse::default());
    let mut client = ServiceBuilder::new()
        .layer(FailFastLayer::new())
        .service(Balance::new(discover));

    let mut failed = 0;
    let mut sent = 0;
    while handles[1].state() != State::Open {
        if sent == MAX_REQUESTS_TO_TRIP {
            return Err("b's breaker never opened".into());
        }
        sent += 1;
        if client.ready().await?.call(sent as u32).await.is_err() {
            failed += 1;
        }
    }
    println!("b's breaker opened after {sent} requests ({failed} of them failed on b)");

    let before: BTreeMap<_, _> = calls
        .iter()
        .map(|(name, count)| (*name, count.load(Ordering::SeqCst)))
        .collect();
    for id in 0..100 {
        client.ready().await?.call(id).await?;
    }
    for (name, count) in &calls {
        let received = count.load(Ordering::SeqCst) - before[name];
        println!("endpoint {name}: {received} of the next 100 requests");
    }
    if calls["b"].load(Ordering::SeqCst) != before["b"] {
        return Err("a request reached b while its breaker was open".into());
    }

    // With every breaker open p2c has nothing ready; FailFast answers now instead of waiting.
    for handle in &handles {
        handle.force_open();
    }
    let error = match client.ready().await?.call(0).await {
        Ok(answer) => return Err(format!("expected a rejection, got {answer:?}").into()),
        Err(error) => error,
    };
    if error.downcast_ref::<NoAvailableEndpoint>().is_none() {
        return Err(error);
    }
    println!("every breaker open: {error}");
    Ok(())
}
