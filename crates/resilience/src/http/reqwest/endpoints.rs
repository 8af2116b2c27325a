//! A [`ResilientClient`](super::ResilientClient)'s endpoints: how one is made from its URL
//! (breaker, attempt timeout, health check), and what the client keeps of each.
//!
//! The client keeps one list of endpoints, the balancer's: each entry's key is a
//! [`ClientEndpoint`], which carries the URL, the breaker handle and the latency recorder, so
//! that the client's accessors and the admin registry read the same list the balancer routes
//! over, under its one lock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Url};
use tower_layer::Layer;

use super::attempt::{Rebase, SendAttempt};
use super::endpoint::HttpEndpoint;
use super::stack::Endpoint;
use crate::circuit_breaker::{
    CircuitBreakerConfig, CircuitBreakerHandle, CircuitBreakerLayer, HealthCheck,
};
use crate::error::{BoxError, InvalidConfig};
use crate::http::HttpClassifier;
use crate::timeout::TimeoutLayer;

/// One endpoint as the client knows it: the balancer's key for it.
///
/// Equal when the URLs are, so a URL added again replaces the endpoint in place.
#[derive(Clone)]
pub(super) struct ClientEndpoint {
    /// The endpoint's URL as the client keys it: without a trailing slash.
    pub(super) url: Arc<str>,
    pub(super) breaker: CircuitBreakerHandle,
    #[cfg(feature = "admin")]
    pub(super) latency: crate::admin::LatencyRecorder,
}

impl PartialEq for ClientEndpoint {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Debug for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Where and how often to check an endpoint whose breaker is open.
#[derive(Debug, Clone)]
pub(super) struct HealthSettings {
    pub(super) path: String,
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
}

/// Makes the per-endpoint stack: breaker → attempt timeout → reqwest, with its health check.
pub(super) struct EndpointFactory {
    pub(super) upstream: String,
    pub(super) client: Client,
    pub(super) attempt_timeout: Duration,
    pub(super) max_body: usize,
    pub(super) breaker: CircuitBreakerConfig,
    pub(super) health: Option<HealthSettings>,
    pub(super) breakers_forced_closed: bool,
}

impl EndpointFactory {
    /// The endpoint at `base`, and its entry in the client's list; the breaker is named
    /// `upstream@url`.
    pub(super) fn make(&self, base: Url) -> Result<(ClientEndpoint, Endpoint), InvalidConfig> {
        let url = endpoint_key(&base);
        let health = self
            .health
            .as_ref()
            .map(|health| self.health_check(&base, health))
            .transpose()?;
        let attempt = TimeoutLayer::new(self.attempt_timeout).layer(SendAttempt::new(
            HttpEndpoint::new(self.client.clone(), base.clone())
                .with_max_body(self.max_body)
                .answering_as(&self.upstream, Arc::clone(&url)),
        ));
        #[cfg(feature = "admin")]
        let attempt =
            crate::admin::LatencyLayer::new(crate::admin::LatencyRecorder::new()).layer(attempt);
        let mut endpoint = CircuitBreakerLayer::new(self.breaker.clone())
            .with_classifier(HttpClassifier)
            .named(format!("{}@{url}", self.upstream))
            .layer(attempt);
        if let Some(check) = health {
            endpoint = endpoint.with_health_check(check)?;
        }
        if self.breakers_forced_closed {
            endpoint.handle().force_closed();
        }
        let entry = ClientEndpoint {
            url,
            breaker: endpoint.handle(),
            #[cfg(feature = "admin")]
            latency: endpoint.get_ref().recorder().clone(),
        };
        #[cfg(feature = "opentelemetry")]
        let endpoint = crate::http::trace::AttemptSpan::new(endpoint);
        Ok((entry, Rebase::new(base, endpoint)))
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
}

/// The endpoint's URL as the client keys it: without a trailing slash.
pub(super) fn endpoint_key(base: &Url) -> Arc<str> {
    Arc::from(base.as_str().trim_end_matches('/'))
}

/// `url` as an endpoint base: an http(s) URL with a host.
pub(super) fn parse_endpoint(url: &str) -> Result<Url, InvalidConfig> {
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
