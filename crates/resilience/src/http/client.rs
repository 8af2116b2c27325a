use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use reqwest::{Client, Method, Request, RequestBuilder, Response, Url};
use tower::ServiceExt;
use tower::retry::Retry;
use tower_layer::Layer;
use tower_service::Service;

use super::{HttpClassifier, HttpEndpoint, HttpRetryRules};
use crate::timeout::future::ResponseFuture as DeadlineFuture;
use crate::{
    BoxError, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerHandle, CircuitBreakerLayer,
    Deadline, ExponentialBackoff, InvalidConfig, RetryBudget, RetryMetrics, RetryPolicy,
    RoundRobin, RoundRobinHandle, Timeout, TimeoutLayer,
};

type Endpoint = CircuitBreaker<Timeout<HttpEndpoint>, HttpClassifier>;
type Stack = Deadline<Retry<RetryPolicy<HttpRetryRules>, RoundRobin<String, Endpoint>>>;

/// An HTTP client for one upstream with several endpoints: the whole stack of this crate over
/// `reqwest`.
///
/// ```text
/// deadline → retry → round robin ─┬─ breaker → attempt timeout → reqwest → endpoint 1
///                                 └─ breaker → attempt timeout → reqwest → endpoint 2
/// ```
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
/// println!("{}", response.status());
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
    request_base: Url,
    endpoints: RoundRobinHandle<String, Endpoint>,
    breakers: Mutex<Vec<CircuitBreakerHandle>>,
    policy: RetryPolicy<HttpRetryRules>,
}

/// Makes the per-endpoint stack: breaker → attempt timeout → reqwest.
struct EndpointFactory {
    upstream: String,
    client: Client,
    attempt_timeout: Duration,
    breaker: CircuitBreakerConfig,
}

impl EndpointFactory {
    /// The endpoint for `base`, keyed by its URL; its breaker is named `upstream@url`.
    fn make(&self, base: Url) -> (String, Endpoint) {
        let (key, name) = self.key_and_name(&base);
        let endpoint = CircuitBreakerLayer::new(self.breaker.clone())
            .with_classifier(HttpClassifier)
            .named(name)
            .layer(
                TimeoutLayer::new(self.attempt_timeout)
                    .layer(HttpEndpoint::new(self.client.clone(), base)),
            );
        (key, endpoint)
    }

    /// The balancer key (the URL without a trailing slash) and the breaker name.
    fn key_and_name(&self, base: &Url) -> (String, String) {
        let key = base.as_str().trim_end_matches('/').to_owned();
        let name = format!("{}@{key}", self.upstream);
        (key, name)
    }
}

impl Parts {
    fn breakers(&self) -> MutexGuard<'_, Vec<CircuitBreakerHandle>> {
        // Updates replace whole entries, so a panic elsewhere cannot leave the list half-written.
        self.breakers
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

    /// Sends `request` through the stack.
    pub async fn execute(&self, request: Request) -> Result<Response, BoxError> {
        self.clone().oneshot(request).await
    }

    /// One handle per endpoint breaker, in the order the endpoints were added.
    pub fn breakers(&self) -> Vec<CircuitBreakerHandle> {
        self.parts.breakers().clone()
    }

    /// Counters of the retry policy.
    pub fn retry_metrics(&self) -> RetryMetrics {
        self.parts.policy.metrics()
    }

    /// Adds an endpoint while requests flow (the others keep their breaker state).
    pub fn add_endpoint(&self, url: &str) -> Result<(), InvalidConfig> {
        let (key, endpoint) = self.parts.factory.make(parse_endpoint(url)?);
        let handle = endpoint.handle();
        let mut breakers = self.parts.breakers();
        breakers.retain(|existing| existing.name() != handle.name());
        breakers.push(handle);
        self.parts.endpoints.insert(key, endpoint);
        Ok(())
    }

    /// Removes an endpoint; returns whether it was there.
    pub fn remove_endpoint(&self, url: &str) -> Result<bool, InvalidConfig> {
        let (key, name) = self.parts.factory.key_and_name(&parse_endpoint(url)?);
        self.parts.breakers().retain(|handle| handle.name() != name);
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
    type Response = Response;
    type Error = BoxError;
    type Future =
        DeadlineFuture<
            <Retry<RetryPolicy<HttpRetryRules>, RoundRobin<String, Endpoint>> as Service<
                Request,
            >>::Future,
        >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.stack.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.stack.call(request)
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
/// endpoint, 3 attempts with backoff from 25 ms to 500 ms (50 % jitter) and the default
/// [`RetryBudget`].
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
}

impl ResilientClientBuilder {
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

    /// Sends through this `reqwest::Client` (default: `Client::new()`).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The limit for one attempt.
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

    /// Limits retries with `budget`.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
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
        let mut policy = RetryPolicy::builder()
            .rules(HttpRetryRules)
            .max_attempts(self.max_attempts)
            .backoff(self.backoff)
            .deadline(self.deadline);
        if let Some(budget) = self.budget {
            policy = policy.budget(budget);
        }
        let policy = policy.build()?;
        let factory = EndpointFactory {
            upstream: self.name,
            client: self.client.unwrap_or_default(),
            attempt_timeout: self.attempt_timeout,
            breaker: self.breaker,
        };
        let request_base = bases[0].clone();
        let endpoints: Vec<(String, Endpoint)> =
            bases.into_iter().map(|base| factory.make(base)).collect();
        let breakers = endpoints
            .iter()
            .map(|(_, endpoint)| endpoint.handle())
            .collect();
        let balancer = RoundRobin::new(endpoints);
        let parts = Parts {
            factory,
            request_base,
            endpoints: balancer.handle(),
            breakers: Mutex::new(breakers),
            policy: policy.clone(),
        };
        let stack = Deadline::new(Retry::new(policy, balancer), self.deadline);
        Ok(ResilientClient {
            stack,
            parts: Arc::new(parts),
        })
    }
}
