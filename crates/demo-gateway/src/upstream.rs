//! The resilient clients for the user and order services, and forwarding a request to them.
//!
//! Each upstream is one [`ResilientClient`]: deadline → retry → hedge → load-aware balancer →
//! per-endpoint breaker (with a health check while open) → attempt timeout → reqwest and the
//! whole body. Only an allowlist of headers goes upstream, so
//! hop-by-hop headers and the client's API key never leave the gateway.

use bytes::Bytes;
use demo_kit::{AppError, BoxError};
use http::{HeaderMap, HeaderName, Method};
use resilience::CircuitBreakerConfig;
use resilience::http::ResilientClient;
use tokio::sync::watch;

use crate::config::UpstreamSettings;
use crate::discovery;
use crate::failure::{self, Reply};

/// Headers passed on to the services; everything else stays at the gateway. W3C
/// `traceparent`/`tracestate` are not among them: the gateway continues the caller's trace in
/// its server span, and each attempt writes its own `traceparent` (naming the attempt's span)
/// and the trace's `tracestate` (the resilience crate's attempt span). Zipkin's `b3` and
/// `x-b3-*` (as Linkerd and Istio may use them) pass through as they came.
static FORWARDED_HEADERS: [HeaderName; 10] = [
    http::header::CONTENT_TYPE,
    http::header::ACCEPT,
    HeaderName::from_static(demo_kit::REQUEST_ID),
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("b3"),
    HeaderName::from_static("x-b3-traceid"),
    HeaderName::from_static("x-b3-spanid"),
    HeaderName::from_static("x-b3-parentspanid"),
    HeaderName::from_static("x-b3-sampled"),
    HeaderName::from_static("x-b3-flags"),
];

/// Upstream answers larger than this are refused rather than buffered.
const MAX_UPSTREAM_BODY: usize = 4 * 1024 * 1024;

/// One upstream service and the client that reaches it.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// How clients see it named, e.g. `user-service`.
    pub service: &'static str,
    /// The resilient client over its endpoints.
    pub client: ResilientClient,
}

impl Upstream {
    /// A client for `service` over `endpoints`, configured by `settings`, sending through
    /// [`demo_kit::proxy_client`] (the reqwest configuration `reqwest-floor` measures too).
    ///
    /// With `--mesh` the mesh's sidecar retries and breaks, so the gateway does neither (one
    /// attempt, no hedging, no health checks, every breaker forced closed, which
    /// `/admin/status` shows as `forced_closed`); the attempt timeout and the deadline stay, as
    /// the gateway still owes its client an answer in time.
    pub fn new(
        service: &'static str,
        short_name: &str,
        endpoints: &[String],
        settings: &UpstreamSettings,
    ) -> Result<Self, BoxError> {
        let breaker = CircuitBreakerConfig::builder()
            .consecutive_failures(settings.breaker_failures)
            .open_duration(settings.breaker_open)
            .max_open_duration(settings.breaker_max_open.max(settings.breaker_open))
            .build()?;
        let mut client = ResilientClient::builder(short_name)
            .client(demo_kit::proxy_client::proxy_client()?)
            .endpoints(endpoints.iter().cloned())
            .attempt_timeout(settings.attempt_timeout)
            .deadline(settings.deadline)
            .max_attempts(settings.max_attempts)
            .circuit_breaker(breaker)
            .max_response_body(MAX_UPSTREAM_BODY)
            .health_check(
                &settings.health_path,
                settings.health_interval,
                settings.health_interval.min(settings.attempt_timeout),
            );
        if settings.no_hedge || settings.mesh {
            client = client.without_hedging();
        }
        if settings.mesh {
            client = client
                .max_attempts(1)
                .without_health_check()
                .breakers_forced_closed();
        }
        Ok(Self {
            service,
            client: client.build()?,
        })
    }

    /// The endpoint URLs the client balances over now, as it keys them.
    pub fn endpoints(&self) -> Vec<String> {
        self.client.endpoints()
    }

    /// Makes the client's endpoints `desired`: adds the new ones (each with a fresh breaker),
    /// then removes the gone ones, so the set is never empty in between; endpoints that stay
    /// keep their breakers. An empty `desired` keeps the last known set (see [`discovery`]).
    ///
    /// [`discovery`]: crate::discovery
    pub fn reconcile(&self, desired: &discovery::EndpointSet) {
        let service = self.service;
        let plan = discovery::plan(&self.endpoints(), desired);
        for url in &plan.add {
            match self.client.add_endpoint(url) {
                Ok(()) => tracing::info!(service, endpoint = %url, "endpoint added"),
                Err(error) => tracing::warn!(service, endpoint = %url, %error, "cannot add"),
            }
        }
        for url in &plan.remove {
            match self.client.remove_endpoint(url) {
                // Its requests in flight hold its stack and finish.
                Ok(_) => tracing::info!(service, endpoint = %url, "endpoint removed"),
                Err(error) => tracing::warn!(service, endpoint = %url, %error, "cannot remove"),
            }
        }
    }

    /// Applies every new desired set from `feed` (a discovery source's), until the source stops.
    pub async fn follow(self, mut feed: watch::Receiver<discovery::EndpointSet>) {
        while feed.changed().await.is_ok() {
            let desired = feed.borrow_and_update().clone();
            self.reconcile(&desired);
        }
    }

    /// Whether at least one endpoint's breaker admits traffic.
    pub fn is_ready(&self) -> bool {
        self.client
            .breakers()
            .iter()
            .any(|breaker| breaker.admits())
    }

    /// Sends `method path_and_query` with `body` and the allowed `headers` of the client's
    /// request, and reads the whole answer. Every failure is already an [`AppError`], decided
    /// in [`failure`].
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Reply, AppError> {
        let mut request = self.client.request(method.clone(), path_and_query);
        // One pass over what the client sent (a few headers), not a lookup per allowed name.
        for (name, value) in headers {
            if FORWARDED_HEADERS.contains(name) {
                request = request.header(name, value);
            }
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let request = request.build().map_err(|error| {
            AppError::internal(format!(
                "building the upstream request {method} {path_and_query}: {error}"
            ))
        })?;
        failure::check(self.service, self.client.execute(request).await)
    }
}
