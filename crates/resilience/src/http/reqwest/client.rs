use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use pin_project_lite::pin_project;
use reqwest::{Client, Method, Request, RequestBuilder, Url};
use tower::ServiceExt;
use tower::retry::Retry;
use tower_layer::Layer;
use tower_service::Service;

use super::attempt::{Attempt, Rebase, SendAttempt};
use super::endpoint::{DEFAULT_MAX_BODY, HttpEndpoint};
use crate::backoff::ExponentialBackoff;
use crate::balance::FailFast;
use crate::balance::{LeastLoaded, LeastLoadedConfig, LeastLoadedHandle};
use crate::circuit_breaker::HealthCheck;
use crate::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerHandle, CircuitBreakerLayer,
};
use crate::error::{BoxError, InvalidConfig};
use crate::hedge::{Hedge, HedgeConfig, HedgeMetrics};
use crate::http::{HttpClassifier, HttpRetryRules, IdempotentHedge};
use crate::retry::{RetryBudget, RetryMetrics, RetryPolicy};
use crate::striped::PerStripe;
use crate::timeout::{Deadline, Timeout, TimeoutLayer};

/// One endpoint: rebase → [attempt span →] breaker → [latency →] attempt timeout → reqwest and
/// the body.
type Endpoint = Rebase<Traced<CircuitBreaker<TimedAttempt, HttpClassifier>>>;
/// One attempt; with the `admin` feature, timed for the dashboard (two clock reads per attempt).
#[cfg(feature = "admin")]
type TimedAttempt = crate::admin::Latency<Timeout<SendAttempt>>;
#[cfg(not(feature = "admin"))]
type TimedAttempt = Timeout<SendAttempt>;
#[cfg(feature = "opentelemetry")]
type Traced<S> = crate::http::trace::AttemptSpan<S>;
#[cfg(not(feature = "opentelemetry"))]
type Traced<S> = S;
type Balancer = LeastLoaded<String, Endpoint, HttpClassifier>;
type Stack = Deadline<
    Retry<RetryPolicy<HttpRetryRules>, Hedge<FailFast<Balancer>, Option<IdempotentHedge>>>,
>;

/// An HTTP client for one upstream with several endpoints: the whole stack of this crate over
/// `reqwest`.
///
/// ```text
/// deadline → retry → hedge → fail fast → least loaded ─┬─ breaker → attempt timeout → reqwest + body → endpoint 1
///                                                      └─ breaker → attempt timeout → reqwest + body → endpoint 2
///                                       while a breaker is open: GET /health every ~250 ms ──┘
/// ```
///
/// The balancer is [`LeastLoaded`]: alike endpoints take turns, a slow or busy one loses its
/// share, one that fails far more often than its peers is ejected for a while, and one that
/// comes back ramps up. A retry after an endpoint's own failure goes to another endpoint at
/// once while one is healthy, and backs off only when none is.
///
/// With the `opentelemetry` feature, each endpoint's stack starts with an
/// [`AttemptSpan`](crate::http::trace::AttemptSpan): one client span per attempt, retries and
/// hedge copies included, and a `traceparent` naming it on the request.
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
#[derive(Clone)]
pub struct ResilientClient {
    stack: Stack,
    parts: Arc<Parts>,
}

/// What every clone shares: how to make endpoints, and handles on them.
struct Parts {
    factory: EndpointFactory,
    /// The first endpoint's origin (no path): requests are built on it, then each endpoint's
    /// `Rebase` puts them under its own base (and base path), once.
    request_base: Url,
    endpoints: LeastLoadedHandle<String, Endpoint>,
    handles: Mutex<Vec<EndpointHandles>>,
    policy: RetryPolicy<HttpRetryRules>,
    hedge: Hedge<FailFast<Balancer>, Option<IdempotentHedge>>,
    /// Each thread stripe's own copy of the stack, made there on first use: [`execute`]
    /// clones this thread's copy, whose reference counts are this thread's (see the balancer's
    /// copies of its endpoints), instead of a copy made on whichever thread built the client.
    ///
    /// [`execute`]: ResilientClient::execute
    local_stacks: PerStripe<Stack>,
}

/// Where and how often to check an endpoint whose breaker is open.
#[derive(Debug, Clone)]
struct HealthSettings {
    path: String,
    interval: Duration,
    timeout: Duration,
}

/// Makes the per-endpoint stack: breaker → attempt timeout → reqwest, with its health check.
struct EndpointFactory {
    upstream: String,
    client: Client,
    attempt_timeout: Duration,
    max_body: usize,
    breaker: CircuitBreakerConfig,
    health: Option<HealthSettings>,
    breakers_forced_closed: bool,
}

/// What stays in reach of an endpoint once the balancer owns it.
struct EndpointHandles {
    /// The endpoint's URL as the balancer keys it.
    key: String,
    breaker: CircuitBreakerHandle,
    #[cfg(feature = "admin")]
    latency: crate::admin::LatencyRecorder,
}

impl EndpointFactory {
    /// The endpoint for `base`, keyed by its URL, and its handles; the breaker is named
    /// `upstream@url`.
    fn make(&self, base: Url) -> Result<(String, Endpoint, EndpointHandles), InvalidConfig> {
        let (key, name) = self.key_and_name(&base);
        let health = self
            .health
            .as_ref()
            .map(|health| self.health_check(&base, health))
            .transpose()?;
        let attempt = TimeoutLayer::new(self.attempt_timeout).layer(SendAttempt::new(
            HttpEndpoint::new(self.client.clone(), base.clone()).with_max_body(self.max_body),
        ));
        #[cfg(feature = "admin")]
        let attempt =
            crate::admin::LatencyLayer::new(crate::admin::LatencyRecorder::new()).layer(attempt);
        let mut endpoint = CircuitBreakerLayer::new(self.breaker.clone())
            .with_classifier(HttpClassifier)
            .named(name)
            .gate_readiness()
            .layer(attempt);
        if let Some(check) = health {
            endpoint = endpoint.with_health_check(check)?;
        }
        if self.breakers_forced_closed {
            endpoint.handle().force_closed();
        }
        let handles = EndpointHandles {
            key: key.clone(),
            breaker: endpoint.handle(),
            #[cfg(feature = "admin")]
            latency: endpoint.get_ref().recorder().clone(),
        };
        #[cfg(feature = "opentelemetry")]
        let endpoint = crate::http::trace::AttemptSpan::new(endpoint);
        Ok((key, Rebase::new(base, endpoint), handles))
    }

    /// `GET base/path`, healthy when it answers 2xx and its whole body within the check's
    /// timeout: an endpoint whose answers stall after the headers is not back.
    fn health_check(
        &self,
        base: &Url,
        health: &HealthSettings,
    ) -> Result<HealthCheck, InvalidConfig> {
        let url = base
            .join(health.path.trim_start_matches('/'))
            .map_err(|error| {
                InvalidConfig::new(
                    "health check",
                    format!("{:?} is not a path: {error}", health.path),
                )
            })?;
        let client = self.client.clone();
        let check = HealthCheck::new(move || {
            let request = client.get(url.clone());
            async move {
                let response = request.send().await?;
                let status = response.status();
                response.bytes().await?;
                match status.is_success() {
                    true => Ok(()),
                    false => Err(BoxError::from(format!(
                        "the health check answered {status}"
                    ))),
                }
            }
        })
        .every(health.interval)
        .timeout(health.timeout);
        Ok(check)
    }

    /// The balancer key (the URL without a trailing slash) and the breaker name.
    fn key_and_name(&self, base: &Url) -> (String, String) {
        let key = base.as_str().trim_end_matches('/').to_owned();
        let name = format!("{}@{key}", self.upstream);
        (key, name)
    }
}

impl Parts {
    /// This thread's copy of `stack`.
    fn local_stack(&self, stack: &Stack) -> &Stack {
        self.local_stacks.get_or_init(|| stack.clone())
    }

    /// Each endpoint's handles, in the order the endpoints were added.
    fn handles(&self) -> MutexGuard<'_, Vec<EndpointHandles>> {
        // Updates replace whole entries, so a panic elsewhere cannot leave the list half-written.
        self.handles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ResilientClient {
    /// Starts a client for the upstream called `name` (used in breaker names and logs).
    pub fn builder(name: impl Into<String>) -> ResilientClientBuilder {
        ResilientClientBuilder {
            name: name.into(),
            endpoints: Vec::new(),
            client: None,
            attempt_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(3),
            breaker: CircuitBreakerConfig::default(),
            max_attempts: 3,
            backoff: ExponentialBackoff::new(Duration::from_millis(25), Duration::from_millis(500))
                .with_jitter(0.5),
            budget: None,
            retry_after_cap: None,
            max_body: DEFAULT_MAX_BODY,
            health: Some(HealthSettings {
                path: "/health".to_owned(),
                interval: Duration::from_millis(250),
                timeout: Duration::from_millis(250),
            }),
            hedge: Some(HedgeConfig::default()),
            balancing: LeastLoadedConfig::default(),
            seed: None,
            breakers_forced_closed: false,
        }
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
    pub async fn execute(&self, request: Request) -> Result<http::Response<Bytes>, BoxError> {
        let stack = self.parts.local_stack(&self.stack).clone();
        stack.oneshot(Attempt::new(request)).await
    }

    /// One handle per endpoint breaker, in the order the endpoints were added.
    pub fn breakers(&self) -> Vec<CircuitBreakerHandle> {
        self.parts
            .handles()
            .iter()
            .map(|handles| handles.breaker.clone())
            .collect()
    }

    /// The endpoints' URLs as the client keys them (without a trailing slash), in the order
    /// they were added.
    pub fn endpoints(&self) -> Vec<String> {
        self.parts
            .handles()
            .iter()
            .map(|handles| handles.key.clone())
            .collect()
    }

    /// Each endpoint's breaker with its attempts' latency, for an admin
    /// [`Registry`](crate::admin::Registry).
    #[cfg(feature = "admin")]
    pub(crate) fn watched_endpoints(&self) -> Vec<crate::admin::WatchedEndpoint> {
        let mut balancing = self.parts.endpoints.status();
        self.parts
            .handles()
            .iter()
            .map(|handles| {
                let watched = crate::admin::WatchedEndpoint::new(handles.breaker.clone())
                    .at(handles.key.clone())
                    .with_latency(handles.latency.clone());
                match balancing.iter().position(|(key, _)| *key == handles.key) {
                    Some(index) => watched.with_balancing(balancing.swap_remove(index).1),
                    None => watched,
                }
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

    /// Adds an endpoint while requests flow (the others keep their breaker state).
    pub fn add_endpoint(&self, url: &str) -> Result<(), InvalidConfig> {
        let (key, endpoint, handles) = self.parts.factory.make(parse_endpoint(url)?)?;
        let mut all = self.parts.handles();
        all.retain(|existing| existing.key != handles.key);
        all.push(handles);
        self.parts.endpoints.insert(key, endpoint);
        Ok(())
    }

    /// Removes an endpoint; returns whether it was there.
    pub fn remove_endpoint(&self, url: &str) -> Result<bool, InvalidConfig> {
        let (key, _) = self.parts.factory.key_and_name(&parse_endpoint(url)?);
        self.parts.handles().retain(|handles| handles.key != key);
        Ok(self.parts.endpoints.remove(&key))
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
        }
    }
}

pin_project! {
    /// The answer of a [`ResilientClient`]: the first successful attempt's whole response, or
    /// why there is none. Its type does not name the layers inside, so they can change.
    pub struct ResponseFuture {
        #[pin]
        inner: <Stack as Service<Attempt>>::Future,
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<Bytes>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

fn parse_endpoint(url: &str) -> Result<Url, InvalidConfig> {
    let parsed = Url::parse(url).map_err(|error| {
        InvalidConfig::new("endpoint", format!("{url:?} is not a URL: {error}"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(InvalidConfig::new(
            "endpoint",
            format!("{url:?} is not an http(s) URL with a host"),
        ));
    }
    Ok(parsed)
}

/// Builds a [`ResilientClient`]; see [`ResilientClient::builder`].
///
/// Defaults: attempt timeout 1 s, deadline 3 s, the default [`CircuitBreakerConfig`] per
/// endpoint with a health check of `GET /health` every 250 ms while open, 3 attempts with
/// backoff from 25 ms to 500 ms (50 % jitter), `Retry-After` honoured up to half the deadline,
/// the default [`RetryBudget`] shared by retries and hedges, idempotent requests hedged at the
/// 95th percentile of latency ([`HedgeConfig::default`]), and bodies read up to 4 MiB.
#[derive(Debug)]
pub struct ResilientClientBuilder {
    name: String,
    endpoints: Vec<String>,
    client: Option<Client>,
    attempt_timeout: Duration,
    deadline: Duration,
    breaker: CircuitBreakerConfig,
    max_attempts: u32,
    backoff: ExponentialBackoff,
    budget: Option<RetryBudget>,
    retry_after_cap: Option<Duration>,
    max_body: usize,
    health: Option<HealthSettings>,
    hedge: Option<HedgeConfig>,
    balancing: LeastLoadedConfig,
    seed: Option<u64>,
    breakers_forced_closed: bool,
}

impl ResilientClientBuilder {
    /// How the balancer weighs endpoints: latency decay, slow start, outlier detection
    /// (default [`LeastLoadedConfig::default`]).
    pub fn balancing(mut self, config: LeastLoadedConfig) -> Self {
        self.balancing = config;
        self
    }

    /// Adds one endpoint base URL.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoints.push(url.into());
        self
    }

    /// Adds endpoint base URLs.
    pub fn endpoints<I: IntoIterator<Item = S>, S: Into<String>>(mut self, urls: I) -> Self {
        self.endpoints.extend(urls.into_iter().map(Into::into));
        self
    }

    /// Sends through this `reqwest::Client` (default: `Client::new()`, with rustls for https).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The limit for one attempt: sending the request and reading the whole answer.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The limit for a whole request, retries included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Each endpoint's breaker.
    pub fn circuit_breaker(mut self, config: CircuitBreakerConfig) -> Self {
        self.breaker = config;
        self
    }

    /// At most `n` attempts per request.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The delay before each retry.
    pub fn backoff(mut self, backoff: ExponentialBackoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Limits retries and hedges, together, with `budget`.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Honours a `Retry-After` of at most `cap` (default: half the deadline); it must be shorter
    /// than the deadline.
    pub fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = Some(cap);
        self
    }

    /// Reads at most `bytes` of an answer; a longer one fails its attempt with
    /// [`BodyTooLarge`](crate::http::BodyTooLarge) and is not retried (default 4 MiB).
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// While an endpoint's breaker is open, checks it with `GET path` every `interval`
    /// (jittered), allowing each check `timeout`; a 2xx lets a live request probe it at once
    /// (default: `/health`, every 250 ms, 250 ms each).
    pub fn health_check(
        mut self,
        path: impl Into<String>,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        self.health = Some(HealthSettings {
            path: path.into(),
            interval,
            timeout,
        });
        self
    }

    /// No health check: an open breaker waits out its open duration for a live probe.
    pub fn without_health_check(mut self) -> Self {
        self.health = None;
        self
    }

    /// Every endpoint's breaker, also of endpoints added later, starts forced closed: it
    /// counts but never opens (its state reads `forced_closed`) until an operator resets it.
    /// For a client behind a service mesh whose sidecar already ejects failing endpoints.
    pub fn breakers_forced_closed(mut self) -> Self {
        self.breakers_forced_closed = true;
        self
    }

    /// Hedges idempotent requests as `config` says.
    pub fn hedge(mut self, config: HedgeConfig) -> Self {
        self.hedge = Some(config);
        self
    }

    /// Never hedges.
    pub fn without_hedging(mut self) -> Self {
        self.hedge = None;
        self
    }

    /// Seeds every source of jitter (retry backoff, open durations, health-check intervals),
    /// for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the configuration and builds the stack.
    pub fn build(self) -> Result<ResilientClient, InvalidConfig> {
        if self.endpoints.is_empty() {
            return Err(InvalidConfig::new(
                "resilient client",
                format!("upstream {:?} has no endpoints", self.name),
            ));
        }
        if self.attempt_timeout.is_zero() || self.deadline.is_zero() {
            return Err(InvalidConfig::new(
                "resilient client",
                "timeouts must be greater than zero",
            ));
        }
        let bases = self
            .endpoints
            .iter()
            .map(|url| parse_endpoint(url))
            .collect::<Result<Vec<_>, _>>()?;
        let mut breaker = self.breaker;
        if let Some(seed) = self.seed {
            breaker.seed = Some(seed);
        }
        let factory = EndpointFactory {
            upstream: self.name,
            client: match self.client {
                Some(client) => client,
                None => Client::builder().build().map_err(|error| {
                    InvalidConfig::new("resilient client", format!("reqwest: {error}"))
                })?,
            },
            attempt_timeout: self.attempt_timeout,
            max_body: self.max_body,
            breaker,
            health: self.health,
            breakers_forced_closed: self.breakers_forced_closed,
        };
        let mut request_base = bases[0].clone();
        request_base.set_path("/");
        request_base.set_query(None);
        request_base.set_fragment(None);
        let mut handles = Vec::with_capacity(bases.len());
        let mut endpoints = Vec::with_capacity(bases.len());
        for base in bases {
            let (key, endpoint, endpoint_handles) = factory.make(base)?;
            endpoints.push((key, endpoint));
            handles.push(endpoint_handles);
        }
        let balancer =
            LeastLoaded::with_config(endpoints, self.balancing).with_classifier(HttpClassifier);
        let mut policy = RetryPolicy::builder()
            .rules(HttpRetryRules)
            .max_attempts(self.max_attempts)
            .backoff(self.backoff)
            .deadline(self.deadline)
            .alternatives(balancer.handle());
        if let Some(budget) = self.budget {
            policy = policy.budget(budget);
        }
        if let Some(cap) = self.retry_after_cap {
            policy = policy.retry_after_cap(cap);
        }
        if let Some(seed) = self.seed {
            policy = policy.seed(seed);
        }
        let policy = policy.build()?;
        let copies = self.hedge.is_some().then_some(IdempotentHedge);
        let mut hedge = Hedge::new(
            FailFast::new(balancer.clone()),
            copies,
            self.hedge.unwrap_or_default(),
        );
        if let Some(budget) = policy.budget() {
            hedge = hedge.with_budget(Arc::clone(budget));
        }
        let parts = Parts {
            factory,
            request_base,
            endpoints: balancer.handle(),
            handles: Mutex::new(handles),
            policy: policy.clone(),
            hedge: hedge.clone(),
            local_stacks: PerStripe::new(),
        };
        let stack = Deadline::new(Retry::new(policy, hedge), self.deadline);
        Ok(ResilientClient {
            stack,
            parts: Arc::new(parts),
        })
    }
}
