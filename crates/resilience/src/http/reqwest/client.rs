//! [`ResilientClient`]: the handle users hold, its accessors, and its `Service` impl. How its
//! stack is put together is in `stack.rs`, its settings in `builder.rs`, its endpoints in
//! `endpoints.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use pin_project_lite::pin_project;
use reqwest::{Method, Request, RequestBuilder, Url};
use tower::ServiceExt;
use tower_service::Service;

use super::attempt::Attempt;
use super::builder::ResilientClientBuilder;
use super::endpoints::{ClientEndpoint, EndpointFactory, endpoint_key, parse_endpoint};
use super::stack::{Endpoint, Hedged, Stack};
use super::unavailable::UpstreamUnavailable;
use crate::balance::{LeastLoadedHandle, NoAvailableEndpoint};
use crate::circuit_breaker::CircuitBreakerHandle;
use crate::error::{BoxError, InvalidConfig};
use crate::hedge::HedgeMetrics;
use crate::http::HttpRetryRules;
use crate::retry::{RetryMetrics, RetryPolicy};
use crate::striped::PerStripe;

/// An HTTP client for one upstream with several endpoints: the whole stack of this crate over
/// `reqwest`.
///
/// ```text
/// deadline → retry → hedge → fail fast → least loaded ─┬─ breaker → attempt timeout → reqwest + body → endpoint 1
///                                                      └─ breaker → attempt timeout → reqwest + body → endpoint 2
///                                       while a breaker is open: GET /health every ~250 ms ──┘
/// ```
///
/// Every setting and its default is in one table on [`ResilientClientBuilder`]. Each response
/// names the endpoint that answered it in an [`AnsweredBy`](super::AnsweredBy) extension.
///
/// The balancer is [`LeastLoaded`](crate::balance::LeastLoaded): alike endpoints take turns, a slow or busy one loses its
/// share, one that fails far more often than its peers is ejected for a while, and one that
/// comes back ramps up. A retry after an endpoint's own failure goes to another endpoint at
/// once while one is healthy, and backs off only when none is.
///
/// With the `opentelemetry` feature, each endpoint's stack starts with an [`AttemptSpan`]: one
/// client span per attempt, retries and hedge copies included, and a `traceparent` naming it on
/// the request.
///
/// An attempt is the whole exchange: the request, the headers and the body, read to the end
/// under a cap, so the attempt timeout, the breaker and the retry all cover a body that stalls
/// or breaks. The answer is an `http::Response<Bytes>`.
///
/// It is a `tower::Service<reqwest::Request>` and cheap to clone (clone it per request). Build
/// requests with [`request`](Self::request); their host is replaced by the chosen endpoint's.
///
/// ```no_run
/// use std::time::Duration;
/// use resilience::http::ResilientClient;
///
/// # async fn example() -> Result<(), resilience::BoxError> {
/// let users = ResilientClient::builder("users")
///     .endpoints(["http://127.0.0.1:8081", "http://127.0.0.1:8083"])
///     .attempt_timeout(Duration::from_secs(1))
///     .deadline(Duration::from_secs(3))
///     .build()?;
/// let request = users.request(reqwest::Method::GET, "/users/1").build()?;
/// let response = users.execute(request).await?;
/// println!("{} {:?}", response.status(), response.body());
/// for breaker in users.breakers() {
///     println!("{}: {}", breaker.name(), breaker.state());
/// }
/// # Ok(())
/// # }
/// ```
///
#[cfg_attr(
    feature = "opentelemetry",
    doc = "[`AttemptSpan`]: crate::http::trace::AttemptSpan"
)]
#[cfg_attr(not(feature = "opentelemetry"), doc = "[`AttemptSpan`]: crate")]
#[derive(Clone)]
pub struct ResilientClient {
    pub(super) stack: Stack,
    pub(super) parts: Arc<Parts>,
}

/// What every clone shares: how to make endpoints, the one list of them (the balancer's), and
/// the pieces the client reports on.
pub(super) struct Parts {
    pub(super) factory: EndpointFactory,
    /// The first endpoint's origin (no path): requests are built on it, then each endpoint's
    /// `Rebase` puts them under its own base (and base path), once.
    pub(super) request_base: Url,
    pub(super) endpoints: LeastLoadedHandle<ClientEndpoint, Endpoint>,
    pub(super) policy: RetryPolicy<HttpRetryRules>,
    pub(super) hedge: Hedged,
    /// Each thread stripe's own copy of the stack, made there on first use: [`execute`]
    /// clones this thread's copy, whose reference counts are this thread's (see the balancer's
    /// copies of its endpoints), instead of a copy made on whichever thread built the client.
    ///
    /// [`execute`]: ResilientClient::execute
    pub(super) local_stacks: PerStripe<Stack>,
}

impl Parts {
    /// This thread's copy of `stack`.
    fn local_stack(&self, stack: &Stack) -> &Stack {
        self.local_stacks.get_or_init(|| stack.clone())
    }

    /// `error`, or, when the balancer found no endpoint admitting the request, what each
    /// endpoint of this upstream looks like now.
    fn explain(&self, error: BoxError) -> BoxError {
        match error.downcast::<NoAvailableEndpoint>() {
            Ok(none) => Box::new(UpstreamUnavailable::now(
                &self.factory.upstream,
                self.endpoint_breakers(),
                *none,
            )),
            Err(other) => other,
        }
    }

    /// Each endpoint's URL with its breaker, from the one list.
    fn endpoint_breakers(&self) -> Vec<(String, CircuitBreakerHandle)> {
        self.endpoints
            .keys()
            .into_iter()
            .map(|endpoint| (endpoint.url.to_string(), endpoint.breaker))
            .collect()
    }
}

impl ResilientClient {
    /// Starts a client for the upstream called `name` (used in breaker names and logs), with
    /// the defaults [`ResilientClientBuilder`] lists.
    pub fn builder(name: impl Into<String>) -> ResilientClientBuilder {
        ResilientClientBuilder::new(name.into())
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.parts.factory.upstream
    }

    /// A request to `path_and_query` on this upstream, to finish and pass to
    /// [`execute`](Self::execute).
    pub fn request(&self, method: Method, path_and_query: &str) -> RequestBuilder {
        let url = self
            .parts
            .request_base
            .join(path_and_query.trim_start_matches('/'));
        match url {
            Ok(url) => self.parts.factory.client.request(method, url),
            // An unparsable path fails when the request is built, with reqwest's own error.
            Err(_) => self.parts.factory.client.request(method, path_and_query),
        }
    }

    /// Sends `request` through the stack and reads the whole answer.
    ///
    /// When no endpoint admits it, the error is an [`UpstreamUnavailable`] naming the upstream,
    /// each endpoint's state and the soonest probe. When every attempt failed, it is the last
    /// attempt's error with its whole chain of causes (see [`chain_text`](crate::error::chain_text)).
    pub async fn execute(&self, request: Request) -> Result<http::Response<Bytes>, BoxError> {
        let stack = self.parts.local_stack(&self.stack).clone();
        let answer = stack.oneshot(Attempt::new(request)).await;
        answer.map_err(|error| self.parts.explain(error))
    }

    /// Each endpoint's URL (as [`endpoints`](Self::endpoints) gives it) with its breaker, in the
    /// balancer's turn order: one list, read at once, where zipping the two others could pair
    /// an endpoint with its neighbour's breaker if one was added in between.
    pub fn endpoint_breakers(&self) -> Vec<(String, CircuitBreakerHandle)> {
        self.parts.endpoint_breakers()
    }

    /// One handle per endpoint breaker, in the balancer's turn order (the order endpoints were
    /// added).
    pub fn breakers(&self) -> Vec<CircuitBreakerHandle> {
        self.parts
            .endpoints
            .keys()
            .into_iter()
            .map(|endpoint| endpoint.breaker)
            .collect()
    }

    /// The endpoints' URLs as the client keys them (without a trailing slash), in the same
    /// order as [`breakers`](Self::breakers).
    pub fn endpoints(&self) -> Vec<String> {
        self.parts
            .endpoints
            .keys()
            .iter()
            .map(|endpoint| endpoint.url.to_string())
            .collect()
    }

    /// Each endpoint's breaker with its attempts' latency and its load, for an admin
    /// [`Registry`](crate::admin::Registry).
    #[cfg(feature = "admin")]
    pub(crate) fn watched_endpoints(&self) -> Vec<crate::admin::WatchedEndpoint> {
        self.parts
            .endpoints
            .status()
            .into_iter()
            .map(|(endpoint, status)| {
                crate::admin::WatchedEndpoint::new(endpoint.breaker)
                    .at(endpoint.url.to_string())
                    .with_latency(endpoint.latency)
                    .with_balancing(status)
            })
            .collect()
    }

    /// Counters of the retry policy.
    pub fn retry_metrics(&self) -> RetryMetrics {
        self.parts.policy.metrics()
    }

    /// Counters of the hedge, and its current delay.
    pub fn hedge_metrics(&self) -> HedgeMetrics {
        self.parts.hedge.metrics()
    }

    /// Adds an endpoint while requests flow (the others keep their breaker state); an endpoint
    /// with this URL already is replaced, with a new breaker.
    pub fn add_endpoint(&self, url: &str) -> Result<(), InvalidConfig> {
        let (entry, endpoint) = self.parts.factory.make(parse_endpoint(url)?)?;
        self.parts.endpoints.insert(entry, endpoint);
        Ok(())
    }

    /// Removes an endpoint; returns whether it was there.
    pub fn remove_endpoint(&self, url: &str) -> Result<bool, InvalidConfig> {
        let key = endpoint_key(&parse_endpoint(url)?);
        let found = self
            .parts
            .endpoints
            .keys()
            .into_iter()
            .find(|endpoint| endpoint.url == key);
        Ok(found.is_some_and(|endpoint| self.parts.endpoints.remove(&endpoint)))
    }
}

impl std::fmt::Debug for ResilientClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientClient")
            .field("name", &self.parts.factory.upstream)
            .field("endpoints", &self.parts.endpoints.keys())
            .finish_non_exhaustive()
    }
}

impl Service<Request> for ResilientClient {
    type Response = http::Response<Bytes>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.stack.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        ResponseFuture {
            inner: self.stack.call(Attempt::new(request)),
            parts: Arc::clone(&self.parts),
        }
    }
}

pin_project! {
    /// The answer of a [`ResilientClient`]: the first successful attempt's whole response, or
    /// why there is none. Its type does not name the layers inside, so they can change.
    pub struct ResponseFuture {
        #[pin]
        inner: <Stack as Service<Attempt>>::Future,
        parts: Arc<Parts>,
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<Bytes>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.inner
            .poll(cx)
            .map(|answer| answer.map_err(|error| this.parts.explain(error)))
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
