//! Run with `cargo run -p resilience --example p2c_retry --features http`.
//!
//! Tower's power-of-two-choices balancer over three breakers, with retries, over a hyper-util
//! client: three hyper servers on 127.0.0.1, "c" answering 500 to everything.
//!
//! tower's p2c `Balance` is not `Clone`, and tower's `Retry` clones the service it wraps for
//! each retry, so a `Buffer` goes between them. `FailFast` must sit *inside* that `Buffer`,
//! directly over the balancer: a `Buffer` is ready whenever its queue has room, so a `FailFast`
//! outside it never sees that no endpoint is ready, and requests wait in the queue until their
//! deadline. The working order, outermost first:
//!
//! ```text
//! deadline → retry (HttpRetryRules) → buffer → fail fast → p2c ─┬─ breaker (HttpClassifier) → attempt timeout → hyper-util → a
//!                                                               ├─ ...                                                → b
//!                                                               └─ ...                                                → c
//! ```
//!
//! Every request is answered 200: a 500 from "c" is retried, and p2c may pick "c" again (it
//! picks at random, unlike this crate's balancers, which send a retry elsewhere), but after
//! three failures in a row c's breaker is open, and an open breaker is not ready, so p2c does
//! not pick it. Four attempts per request therefore always reach "a" or "b". With every breaker
//! open, a request fails at once with `NoAvailableEndpoint`, not at its deadline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
    BoxError, CircuitBreakerConfig, CircuitBreakerLayer, DeadlineLayer, ExponentialBackoff,
    FailFastLayer, NoAvailableEndpoint, RetryPolicy, State, TimeoutLayer,
};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::retry::RetryLayer;
use tower::{Service, ServiceBuilder, ServiceExt};

type Request = http::Request<Full<Bytes>>;
type Response = http::Response<Bytes>;

/// The most of an answer an attempt reads.
const MAX_BODY: usize = 64 * 1024;

/// The whole request's limit, retries included.
const DEADLINE: Duration = Duration::from_secs(2);

/// How many requests may go by before "c" has failed three times in a row: p2c picks at
/// random, so not on a schedule, but 100 requests without three picks of one of three
/// endpoints does not happen.
const MAX_REQUESTS_TO_TRIP: usize = 100;

/// A hyper server on 127.0.0.1 that answers its name (with a 500 if it is "c"), counting the
/// requests it receives; stopping it closes its connections.
struct Server {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(name: &'static str) -> Result<Self, BoxError> {
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
                    let service = hyper::service::service_fn(move |_request| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let mut response = hyper::Response::new(Full::new(Bytes::from(name)));
                        if name == "c" {
                            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        async move { Ok::<_, Infallible>(response) }
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

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
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

/// Sends one request; returns who answered, which must have said 200.
async fn send<S>(stack: &S) -> Result<String, BoxError>
where
    S: Service<Request, Response = Response, Error = BoxError> + Clone,
{
    let answer = stack.clone().oneshot(get()?).await?;
    let name = String::from_utf8_lossy(answer.body()).into_owned();
    if answer.status() != http::StatusCode::OK {
        return Err(format!("{name} answered {}", answer.status()).into());
    }
    Ok(name)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let servers = [
        Server::start("a").await?,
        Server::start("b").await?,
        Server::start("c").await?,
    ];
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    let breaker = CircuitBreakerConfig::builder()
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(30))
        .build()?;
    let mut endpoints = Vec::new();
    for (name, server) in ["a", "b", "c"].into_iter().zip(&servers) {
        // Under a balancer a breaker gates readiness by default: nothing to turn on.
        let service = ServiceBuilder::new()
            .layer(
                CircuitBreakerLayer::new(breaker.clone())
                    .with_classifier(HttpClassifier)
                    .named(name),
            )
            .layer(TimeoutLayer::new(Duration::from_secs(1)))
            .service(endpoint(client.clone(), server.addr)?);
        service
            .handle()
            .on_state_change(|change| println!("event: {change}"));
        endpoints.push(service);
    }
    let handles: Vec<_> = endpoints.iter().map(|service| service.handle()).collect();

    let retry = RetryPolicy::builder()
        .rules(HttpRetryRules)
        .max_attempts(4)
        .backoff(ExponentialBackoff::new(
            Duration::from_millis(10),
            Duration::from_millis(50),
        ))
        .deadline(DEADLINE)
        .build()?;
    let discover =
        PendingRequestsDiscover::new(ServiceList::new(endpoints), CompleteOnResponse::default());
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(DEADLINE))
        .layer(RetryLayer::new(retry.clone()))
        // `Balance` is not `Clone`: the buffer is the cloneable handle `Retry` needs ...
        .buffer(64)
        // ... and `FailFast` goes inside it, where it sees the balancer's readiness.
        .layer(FailFastLayer::new())
        .service(Balance::new(discover));

    let mut sent = 0;
    while handles[2].state() != State::Open {
        if sent == MAX_REQUESTS_TO_TRIP {
            return Err("c's breaker never opened".into());
        }
        sent += 1;
        send(&stack).await?;
    }
    println!(
        "c's breaker opened after {sent} requests, every one answered 200 ({} retries)",
        retry.metrics().retries
    );

    let before: Vec<_> = servers.iter().map(Server::requests).collect();
    let requests = 30;
    for _ in 0..requests {
        send(&stack).await?;
    }
    for (name, (server, before)) in ["a", "b", "c"].into_iter().zip(servers.iter().zip(&before)) {
        println!(
            "endpoint {name}: {} of the next {requests} requests",
            server.requests() - before
        );
    }
    if servers[2].requests() != before[2] {
        return Err("a request reached c while its breaker was open".into());
    }

    // Every breaker open: p2c has nothing ready, and FailFast answers now.
    for handle in &handles {
        handle.force_open();
    }
    let started = Instant::now();
    let error = match stack.clone().oneshot(get()?).await {
        Ok(answer) => return Err(format!("expected a rejection, got {answer:?}").into()),
        Err(error) => error,
    };
    let took = started.elapsed();
    if error.downcast_ref::<NoAvailableEndpoint>().is_none() {
        return Err(error);
    }
    // Waiting for a breaker would take the whole deadline; failing at once takes microseconds.
    let at_once = took < DEADLINE / 2;
    println!(
        "every breaker open: {error} (NoAvailableEndpoint, at once: {at_once}, in {took:?}, deadline {DEADLINE:?})"
    );
    for server in servers {
        server.stop().await;
    }
    if !at_once {
        return Err(format!("every breaker open, the request took {took:?} to fail").into());
    }
    Ok(())
}
