//! Run with `cargo run -p resilience --example between --features http`.
//!
//! Layers that are not this crate's between `RoundRobin` and the breakers: tower-http's
//! `TraceLayer` and tower's `ConcurrencyLimit`. A gated breaker says "not now" through
//! readiness, and every tower layer passes readiness on, so the round robin still skips an
//! endpoint whose breaker is open, however it is wrapped.

use std::time::Duration;

use futures::future::{Ready, ready};
use http::StatusCode;
use resilience::http::HttpClassifier;
use resilience::{BoxError, CircuitBreakerConfig, CircuitBreakerLayer, RoundRobin, State};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_http::trace::TraceLayer;

type Request = http::Request<String>;

/// "a" answers every request with a 500, "b" with a 200; each says who it is in a header.
fn upstream(
    name: &'static str,
) -> impl Fn(Request) -> Ready<Result<http::Response<String>, BoxError>> + Clone {
    move |_request| {
        let status = match name {
            "a" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::OK,
        };
        ready(
            http::Response::builder()
                .status(status)
                .header("x-endpoint", name)
                .body(format!("hello from {name}"))
                .map_err(BoxError::from),
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let config = CircuitBreakerConfig::builder()
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(30))
        .build()?;
    let endpoint = |name: &'static str| {
        let breaker = CircuitBreakerLayer::new(config.clone())
            .with_classifier(HttpClassifier)
            .named(name)
            .layer(service_fn(upstream(name)));
        breaker
            .handle()
            .on_state_change(|change| println!("event: {change}"));
        let handle = breaker.handle();
        let service = ServiceBuilder::new()
            // Sees every request that reaches this endpoint, and what came back.
            .layer(TraceLayer::new_for_http().on_response(
                move |response: &http::Response<_>, _latency: Duration, _span: &tracing::Span| {
                    println!("trace: endpoint {name} answered {}", response.status());
                },
            ))
            // At most two requests in flight to this endpoint.
            .concurrency_limit(2)
            .service(breaker);
        (handle, (name, service))
    };
    let (handle_a, a) = endpoint("a");
    let (_, b) = endpoint("b");
    let mut client = RoundRobin::new([a, b]);

    // Once a's breaker is open, count who answers: the round robin must skip a every time.
    let (mut by_a, mut by_b) = (0, 0);
    for _ in 0..12 {
        let a_was_open = handle_a.state() == State::Open;
        let response = client.ready().await?.call(Request::default()).await?;
        let by = response.headers().get("x-endpoint").cloned();
        match by {
            Some(name) if a_was_open && name == "a" => by_a += 1,
            Some(name) if a_was_open && name == "b" => by_b += 1,
            _ => {}
        }
    }
    println!(
        "a's breaker: {}; after it opened, {by_b} requests went to b and {by_a} to a",
        handle_a.state()
    );
    if handle_a.state() != State::Open || by_a != 0 || by_b == 0 {
        return Err("a's breaker should have opened, and a get nothing after".into());
    }
    Ok(())
}
