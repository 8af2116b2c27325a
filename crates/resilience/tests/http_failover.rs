//! Two real HTTP servers on 127.0.0.1 behind the full stack: stop one, and every request still
//! succeeds while its breaker opens; start it again, and a probe brings it back into rotation.
//!
//! Real sockets need the real clock, so the open duration is short and the test waits by
//! sending traffic, bounded by a timeout, never by sleeping.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::collections::HashSet;
use std::time::Duration;

use resilience::http::{AnsweredBy, ResilientClient, UpstreamUnavailable};
use resilience::{CircuitBreakerHandle, State};
use support::{Answer, Server};

async fn get(client: &ResilientClient) -> String {
    let request = client
        .request(reqwest::Method::GET, "/who")
        .build()
        .unwrap();
    let response = client
        .execute(request)
        .await
        .expect("every request succeeds");
    assert_eq!(response.status(), 200);
    String::from_utf8(response.into_body().to_vec()).unwrap()
}

/// A client over two endpoints whose breakers open after two failures in a row, for `open`.
fn two_endpoint_client(urls: [String; 2], open: Duration) -> ResilientClient {
    ResilientClient::builder("users")
        .endpoints(urls)
        .circuit_breaker(
            resilience::CircuitBreakerConfig::builder()
                .consecutive_failures(2)
                .open_duration(open)
                .open_jitter(0.0)
                .build()
                .unwrap(),
        )
        .attempt_timeout(Duration::from_secs(2))
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The client's breaker of the endpoint `server` answers on.
fn breaker_of(client: &ResilientClient, server: &Server) -> CircuitBreakerHandle {
    let addr = server.addr.to_string();
    client
        .breakers()
        .into_iter()
        .find(|breaker| breaker.name().ends_with(&addr))
        .unwrap()
}

#[tokio::test]
async fn each_answer_names_the_endpoint_that_gave_it() {
    let one = Server::start(Answer::Name("one"), "127.0.0.1:0".parse().unwrap()).await;
    let two = Server::start(Answer::Name("two"), "127.0.0.1:0".parse().unwrap()).await;
    let client = two_endpoint_client([one.url(), two.url()], Duration::from_secs(1));
    let mut answered_by = HashSet::new();
    for _ in 0..6 {
        let request = client
            .request(reqwest::Method::GET, "/who")
            .build()
            .unwrap();
        let response = client.execute(request).await.unwrap();
        let answered = response.extensions().get::<AnsweredBy>().cloned().unwrap();
        let server = match response.body().as_ref() {
            b"one" => &one,
            _ => &two,
        };
        assert_eq!(answered.endpoint(), server.url().trim_end_matches('/'));
        assert_eq!(answered.upstream(), Some("users"));
        assert!(
            client
                .endpoints()
                .iter()
                .any(|url| url == answered.endpoint())
        );
        answered_by.insert(answered.endpoint().to_owned());
    }
    assert_eq!(
        answered_by.len(),
        2,
        "both endpoints answered: {answered_by:?}"
    );
}

#[tokio::test]
async fn a_stopped_endpoint_is_routed_around_and_comes_back() {
    let one = Server::start(Answer::Name("one"), "127.0.0.1:0".parse().unwrap()).await;
    let two = Server::start(Answer::Name("two"), "127.0.0.1:0".parse().unwrap()).await;
    let two_addr = two.addr;
    let client = two_endpoint_client([one.url(), two.url()], Duration::from_millis(300));
    let breaker_two = breaker_of(&client, &two);
    let mut events = breaker_two.subscribe();

    let mut seen = HashSet::new();
    for _ in 0..10 {
        seen.insert(get(&client).await);
    }
    assert_eq!(seen, HashSet::from(["one".to_owned(), "two".to_owned()]));

    // Stop "two": its connections close and new ones are refused.
    two.stop().await;
    for _ in 0..20 {
        assert_eq!(get(&client).await, "one");
    }
    assert_eq!(
        breaker_two.state(),
        State::Open,
        "two refused connections twice in a row"
    );
    let opened = events.recv().await.unwrap();
    assert_eq!((opened.from, opened.to), (State::Closed, State::Open));
    let metrics = breaker_two.metrics();
    assert_eq!(metrics.failures, 2);
    assert!(
        client.retry_metrics().retries >= 2,
        "the failed attempts were retried on one"
    );

    // Start "two" again on the same address; traffic alone brings it back once the open
    // duration has passed and a probe succeeds.
    let two = Server::start(Answer::Name("two"), two_addr).await;
    let back = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            get(&client).await;
            if breaker_two.state() == State::Closed {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        back.is_ok(),
        "the breaker closed within 10 s; it is {}",
        breaker_two.state()
    );
    let transitions: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|change| (change.from, change.to))
        .collect();
    assert_eq!(transitions.last(), Some(&(State::HalfOpen, State::Closed)));

    // One at a time, as a quiet client asks: slow start holds back load, not turns.
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(get(&client).await);
    }
    assert!(
        answers.iter().any(|answer| answer == "two"),
        "two serves traffic again: {answers:?}"
    );
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn with_every_endpoint_down_the_error_names_the_causes_and_then_the_endpoints() {
    let one = Server::start(Answer::Name("one"), "127.0.0.1:0".parse().unwrap()).await;
    let two = Server::start(Answer::Name("two"), "127.0.0.1:0".parse().unwrap()).await;
    let urls = [one.url(), two.url()];
    let client = two_endpoint_client(urls.clone(), Duration::from_secs(30));
    one.stop().await;
    two.stop().await;

    // Every attempt is refused: the error is the last attempt's, with its causes down to the
    // socket's.
    let request = client
        .request(reqwest::Method::GET, "/who")
        .build()
        .unwrap();
    let error = client.execute(request).await.unwrap_err();
    let chain = resilience::chain_text(error.as_ref());
    assert!(
        chain.to_lowercase().contains("connection refused"),
        "{chain}"
    );

    // Each breaker opened after its second refusal; then no endpoint admits a request.
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let request = client
                .request(reqwest::Method::GET, "/who")
                .build()
                .unwrap();
            let error = client.execute(request).await.unwrap_err();
            if let Ok(none) = error.downcast::<UpstreamUnavailable>() {
                break none;
            }
        }
    })
    .await
    .expect("both breakers opened");
    assert_eq!(refused.upstream(), "users");
    let listed: Vec<(String, State)> = refused.endpoints().to_vec();
    let expected: Vec<(String, State)> = urls
        .iter()
        .map(|url| (url.trim_end_matches('/').to_owned(), State::Open))
        .collect();
    assert_eq!(listed, expected);
    let soonest = refused.next_probe_in().expect("an open breaker will probe");
    assert!(soonest <= Duration::from_secs(30), "{soonest:?}");
    let text = refused.to_string();
    assert!(
        text.contains("no endpoint of \"users\" is admitting traffic"),
        "{text}"
    );
    assert!(text.contains("the soonest may probe in"), "{text}");
    assert!(
        resilience::find_in_chain::<resilience::NoAvailableEndpoint>(&refused).is_some(),
        "the balancer's own error is still in the chain"
    );
}

#[tokio::test]
async fn breakers_forced_closed_stay_so_for_endpoints_added_later_and_endpoints_are_listed() {
    let client = ResilientClient::builder("users")
        .endpoints(["http://127.0.0.1:1/", "http://127.0.0.1:2"])
        .breakers_forced_closed()
        .build()
        .unwrap();
    assert_eq!(
        client.endpoints(),
        ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    );
    client.add_endpoint("http://127.0.0.1:3").unwrap();
    assert!(
        client
            .breakers()
            .iter()
            .all(|breaker| breaker.state() == State::ForcedClosed),
        "{:?}",
        client.breakers()
    );
    assert!(client.remove_endpoint("http://127.0.0.1:1/").unwrap());
    assert_eq!(
        client.endpoints(),
        ["http://127.0.0.1:2", "http://127.0.0.1:3"]
    );
    assert_eq!(client.breakers().len(), 2);
}

#[tokio::test]
async fn an_endpoint_with_a_base_path_gets_each_path_once_under_it() {
    let server = Server::start(Answer::Target, "127.0.0.1:0".parse().unwrap()).await;
    for base in ["v1", "v1/"] {
        let client = ResilientClient::builder("users")
            .endpoint(format!("{}/{base}", server.url()))
            .build()
            .unwrap();
        let request = client
            .request(reqwest::Method::GET, "/users/7?limit=2")
            .build()
            .unwrap();
        let response = client.execute(request).await.unwrap();
        assert_eq!(
            String::from_utf8(response.into_body().to_vec()).unwrap(),
            "/v1/users/7?limit=2",
            "endpoint {}/{base}",
            server.url()
        );
    }
}

/// Requests sent from several runtime threads go through each thread's own copy of the stack;
/// those copies must share the breakers (and so what a handle from the client reports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_every_thread_share_the_breakers() {
    let one = Server::start(Answer::Name("one"), "127.0.0.1:0".parse().unwrap()).await;
    let two = Server::start(Answer::Name("two"), "127.0.0.1:0".parse().unwrap()).await;
    let client = two_endpoint_client([one.url(), two.url()], Duration::from_secs(60));
    let breaker_two = breaker_of(&client, &two);

    two.stop().await;
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { get(&client).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "one");
    }
    assert_eq!(
        breaker_two.state(),
        State::Open,
        "the failures counted on the threads' copies reached the client's breaker"
    );
    assert!(breaker_two.metrics().failures >= 2);
    one.stop().await;
}
