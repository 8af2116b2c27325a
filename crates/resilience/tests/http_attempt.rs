//! The attempt as the whole exchange, over real HTTP on 127.0.0.1: a body that stalls after the
//! headers, a connection that is refused, an endpoint that comes back while its breaker is open.
//!
//! Real sockets need the real clock. Waits are bounded and driven by requests, never by sleeping;
//! the assertions are about which endpoint answered and what the breakers counted, not about
//! how long anything took.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use resilience::http::ResilientClient;
use resilience::{CircuitBreakerConfig, State, TransitionReason};
use support::{Answer, Server};
use tokio::net::TcpListener;

async fn get(client: &ResilientClient) -> Result<String, resilience::BoxError> {
    let request = client.request(reqwest::Method::GET, "/who").build()?;
    let response = client.execute(request).await?;
    Ok(String::from_utf8(response.into_body().to_vec())?)
}

fn breaker_of(client: &ResilientClient, addr: SocketAddr) -> resilience::CircuitBreakerHandle {
    client
        .breakers()
        .into_iter()
        .find(|breaker| breaker.name().ends_with(&addr.to_string()))
        .unwrap()
}

#[tokio::test]
async fn a_body_that_stalls_fails_its_attempt_and_the_request_goes_elsewhere() {
    let stalls = Server::start(Answer::StallHalfway, "127.0.0.1:0".parse().unwrap()).await;
    let whole = Server::start(Answer::Name("whole"), "127.0.0.1:0".parse().unwrap()).await;
    let client = ResilientClient::builder("users")
        .endpoints([stalls.url(), whole.url()])
        .attempt_timeout(Duration::from_millis(200))
        .deadline(Duration::from_secs(5))
        .circuit_breaker(
            CircuitBreakerConfig::builder()
                .consecutive_failures(2)
                .open_duration(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .without_hedging()
        .build()
        .unwrap();
    for _ in 0..6 {
        assert_eq!(get(&client).await.unwrap(), "whole");
    }
    // The first request went to the stalling endpoint (the first in turn) and timed out there;
    // from then on the balancer knew it for 200 ms slow and sent nothing more its way.
    let breaker = breaker_of(&client, stalls.addr);
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.successes, metrics.failures),
        (0, 1),
        "a half-sent body is a failure, not a success"
    );

    // Alone, the stalling endpoint gives a timeout, not a half answer and not a hang.
    let alone = ResilientClient::builder("users")
        .endpoint(stalls.url())
        .attempt_timeout(Duration::from_millis(200))
        .max_attempts(2)
        .build()
        .unwrap();
    let error = get(&alone).await.unwrap_err();
    assert!(
        resilience::find_in_chain::<resilience::Elapsed>(error.as_ref()).is_some(),
        "{error}"
    );
    stalls.stop().await;
    whole.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_elsewhere_without_a_backoff() {
    let refusing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refusing_url = format!("http://{}", refusing.local_addr().unwrap());
    drop(refusing);
    let up = Server::start(Answer::Name("up"), "127.0.0.1:0".parse().unwrap()).await;
    // A backoff longer than the deadline: any retry that waited for it could not be sent.
    let client = ResilientClient::builder("users")
        .endpoints([refusing_url, up.url()])
        .backoff(resilience::ExponentialBackoff::new(
            Duration::from_secs(10),
            Duration::from_secs(10),
        ))
        .deadline(Duration::from_secs(3))
        .retry_budget(resilience::RetryBudget::new(0.0, 0).unwrap())
        .build()
        .unwrap();
    for _ in 0..4 {
        assert_eq!(get(&client).await.unwrap(), "up");
    }
    let retries = client.retry_metrics();
    assert!(retries.retries >= 1, "{retries:?}");
    assert_eq!(
        (retries.budget_exhausted, retries.out_of_time),
        (0, 0),
        "never-sent retries neither wait nor pay"
    );
    up.stop().await;
}

#[tokio::test]
async fn an_endpoint_back_up_is_found_by_its_health_check_long_before_the_open_duration() {
    let one = Server::start(Answer::Name("one"), "127.0.0.1:0".parse().unwrap()).await;
    let two = Server::start(Answer::Name("two"), "127.0.0.1:0".parse().unwrap()).await;
    let two_addr = two.addr;
    let client = ResilientClient::builder("users")
        .endpoints([one.url(), two.url()])
        .circuit_breaker(
            CircuitBreakerConfig::builder()
                .consecutive_failures(1)
                .open_duration(Duration::from_secs(600))
                .build()
                .unwrap(),
        )
        .health_check(
            "/health",
            Duration::from_millis(50),
            Duration::from_millis(200),
        )
        .build()
        .unwrap();
    let breaker = breaker_of(&client, two_addr);
    let mut events = breaker.subscribe();
    two.stop().await;
    while breaker.state() != State::Open {
        assert_eq!(get(&client).await.unwrap(), "one");
    }

    let two = Server::start(Answer::Name("two"), two_addr).await;
    // Bounded by the test's patience, not by the ten minutes of open duration.
    let back = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if get(&client).await.unwrap() == "two" {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        back.is_ok(),
        "two serves again; its breaker is {}",
        breaker.state()
    );
    let changes: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|change| (change.to, change.reason))
        .collect();
    assert_eq!(
        changes[changes.len() - 2..],
        [
            (State::HalfOpen, TransitionReason::HealthCheckPassed),
            (State::Closed, TransitionReason::ProbesSucceeded(1)),
        ],
        "{changes:?}"
    );
    one.stop().await;
    two.stop().await;
}
