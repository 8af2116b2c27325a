//! Run with `cargo run -p resilience --example client --features reqwest`.
//!
//! A `ResilientClient` over two endpoints, as the README's first snippet builds it: two hyper
//! servers on 127.0.0.1, one answering 200 and one answering 500 to everything (its `/health`
//! too). Every request still succeeds: a 500 to a `GET` is retried on the other endpoint, the
//! failing endpoint's breaker opens after three failures in a row, and from then on the
//! balancer sends it nothing. Each response says which endpoint answered it (`AnsweredBy`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use resilience::http::{AnsweredBy, ResilientClient};
use resilience::{BoxError, CircuitBreakerConfig, State};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// How many requests may go by before the failing endpoint has failed three times in a row:
/// the balancer alternates alike endpoints, so it takes a handful; this bounds the loop.
const MAX_REQUESTS_TO_TRIP: usize = 100;

/// A hyper server on 127.0.0.1 answering every request with `status`, counting those that are
/// not the client's health checks.
struct Server {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(status: hyper::StatusCode) -> Result<Self, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            // Owned by the task: aborting the task drops the set, which closes every connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                        if request.uri().path() != "/health" {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        async move {
                            let mut response = hyper::Response::new(Full::new(
                                Bytes::copy_from_slice(status.as_str().as_bytes()),
                            ));
                            *response.status_mut() = status;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    // A connection the client drops mid-way is not this example's concern.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            task,
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    async fn stop(self) {
        self.task.abort();
        // The task was aborted: its "cancelled" error is the expected outcome.
        let _ = self.task.await;
    }
}

/// Sends one `GET /users/1`; returns the endpoint that answered, which must have said 200.
async fn get(users: &ResilientClient) -> Result<String, BoxError> {
    let request = users.request(reqwest::Method::GET, "/users/1").build()?;
    let response = users.execute(request).await?;
    let answered = response
        .extensions()
        .get::<AnsweredBy>()
        .ok_or("a response without AnsweredBy")?
        .endpoint()
        .to_owned();
    if response.status() != http::StatusCode::OK {
        return Err(format!("{answered} answered {}", response.status()).into());
    }
    Ok(answered)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let good = Server::start(hyper::StatusCode::OK).await?;
    let bad = Server::start(hyper::StatusCode::INTERNAL_SERVER_ERROR).await?;
    println!("good: {} answers 200", good.url());
    println!("bad: {} answers 500", bad.url());

    let users = ResilientClient::builder("users")
        .endpoints([good.url(), bad.url()])
        .circuit_breaker(
            CircuitBreakerConfig::builder()
                .consecutive_failures(3)
                .open_duration(Duration::from_secs(30))
                .build()?,
        )
        .attempt_timeout(Duration::from_secs(1))
        .deadline(Duration::from_secs(3))
        .build()?;
    let bad_breaker = users
        .endpoint_breakers()
        .into_iter()
        .find_map(|(url, breaker)| (url == bad.url()).then_some(breaker))
        .ok_or("no breaker for the failing endpoint")?;
    bad_breaker.on_state_change(|change| println!("event: {change}"));

    let mut sent = 0;
    while bad_breaker.state() != State::Open {
        if sent == MAX_REQUESTS_TO_TRIP {
            return Err(format!(
                "bad's breaker still {} after {sent} requests",
                bad_breaker.state()
            )
            .into());
        }
        sent += 1;
        let answered = get(&users).await?;
        println!("request {sent}: 200 from {answered}");
    }
    println!(
        "bad's breaker: {} after {sent} requests, every one answered 200 ({} reached bad)",
        bad_breaker.state(),
        bad.requests()
    );

    let reached_bad = bad.requests();
    let requests = 20;
    let mut by_good = 0;
    for _ in 0..requests {
        if get(&users).await? == good.url() {
            by_good += 1;
        }
    }
    // While bad's breaker is open only its health check (not counted) reaches it.
    let after = bad.requests() - reached_bad;
    println!(
        "after the trip: {by_good} of {requests} requests answered by good, {after} reached bad"
    );
    println!(
        "bad's breaker: {}; retries sent: {}",
        bad_breaker.state(),
        users.retry_metrics().retries
    );
    good.stop().await;
    bad.stop().await;
    if by_good != requests || after != 0 || bad_breaker.state() != State::Open {
        return Err("good should answer everything once bad is cut off".into());
    }
    Ok(())
}
