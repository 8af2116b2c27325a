//! Run with `cargo run -p resilience --example hyper_util --features http`.
//!
//! The crate's stack over a plain `hyper_util` client, no reqwest: deadline → retry
//! (`HttpRetryRules`) → fail fast → round robin → a breaker per endpoint (`HttpClassifier`)
//! → attempt timeout → the client, which reads the whole body inside the attempt. Two hyper
//! servers on 127.0.0.1 answer; one is stopped half-way, and every request is still answered:
//! the ones that reach the stopped server are retried on the other, until its breaker opens and
//! the round robin stops sending it anything.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use http::uri::{Authority, Scheme};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resilience::http::{HttpClassifier, HttpRetryRules, ReadBody};
use resilience::{
    BoxError, CircuitBreakerConfig, CircuitBreakerLayer, DeadlineLayer, FailFastLayer, RetryPolicy,
    RoundRobin, State, TimeoutLayer,
};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::retry::RetryLayer;
use tower::{Service, ServiceBuilder, ServiceExt};

type Request = http::Request<Full<Bytes>>;
type Response = http::Response<Bytes>;

/// The most of an answer an attempt reads.
const MAX_BODY: usize = 64 * 1024;

/// A hyper server on 127.0.0.1 that answers its name; stopping it closes its connections.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(name: &'static str) -> Result<Self, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Owned by the task: aborting the task drops the set, which closes every connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |_request| async move {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(name))))
                    });
                    // A connection the client drops mid-way is not this example's concern.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    async fn stop(self) {
        self.task.abort();
        // The task was aborted: its "cancelled" error is the expected outcome.
        let _ = self.task.await;
    }
}

/// One endpoint: the shared client, with the endpoint's address put into each request, and the
/// whole body read before the attempt ends (so the attempt timeout and breaker cover it).
fn endpoint(
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
) -> Result<
    impl Service<
        Request,
        Response = Response,
        Error = BoxError,
        Future = BoxFuture<'static, Result<Response, BoxError>>,
    > + Clone,
    BoxError,
> {
    let authority: Authority = addr.to_string().parse()?;
    Ok(tower::service_fn(move |request: Request| {
        let (mut parts, body) = request.into_parts();
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(authority.clone());
        let client = client.clone();
        async move {
            parts.uri = http::Uri::from_parts(uri)?;
            let response = client
                .request(http::Request::from_parts(parts, body))
                .await?;
            let (parts, body) = response.into_parts();
            let body = ReadBody::new(body, MAX_BODY).await?;
            Ok(http::Response::from_parts(parts, body))
        }
        .boxed()
    }))
}

fn get() -> Result<Request, http::Error> {
    http::Request::get("/who").body(Full::new(Bytes::new()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let one = Server::start("server 1").await?;
    let two = Server::start("server 2").await?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    let breaker = CircuitBreakerConfig::builder()
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(30))
        .build()?;
    let mut endpoints = Vec::new();
    for (name, addr) in [("server 1", one.addr), ("server 2", two.addr)] {
        let service = ServiceBuilder::new()
            .layer(
                CircuitBreakerLayer::new(breaker.clone())
                    .with_classifier(HttpClassifier)
                    .named(name),
            )
            .layer(TimeoutLayer::new(Duration::from_secs(1)))
            .service(endpoint(client.clone(), addr)?);
        service
            .handle()
            .on_state_change(|change| println!("event: {change}"));
        endpoints.push((name, service));
    }
    let breaker_two = endpoints[1].1.handle();

    let retry = RetryPolicy::builder()
        .rules(HttpRetryRules)
        .max_attempts(3)
        .deadline(Duration::from_secs(3))
        .build()?;
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(3)))
        .layer(RetryLayer::new(retry.clone()))
        .layer(FailFastLayer::new())
        .service(RoundRobin::new(endpoints));

    for _ in 0..4 {
        let answer = stack.clone().oneshot(get()?).await?;
        println!(
            "before the stop: {}",
            String::from_utf8_lossy(answer.body())
        );
    }

    two.stop().await;
    println!("server 2 stopped");

    let mut by_one = 0;
    let requests = 20;
    for _ in 0..requests {
        let answer = stack.clone().oneshot(get()?).await?;
        if answer.body().as_ref() == b"server 1" {
            by_one += 1;
        }
    }
    println!("after the stop: {by_one} of {requests} requests answered by server 1");
    println!(
        "server 2's breaker: {}; retries sent: {}",
        breaker_two.state(),
        retry.metrics().retries
    );
    one.stop().await;
    if by_one != requests || breaker_two.state() != State::Open {
        return Err("server 2 should be cut off and server 1 answer everything".into());
    }
    Ok(())
}
