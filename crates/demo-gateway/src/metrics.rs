//! `GET /metrics`: Prometheus text from a registry the gateway owns.
//!
//! Request counts are counted as requests pass the edge. Upstream numbers (attempts, retries,
//! breaker states, rejections) live in the resilience stack's handles and are read at scrape
//! time by a collector, so they are never out of step with `/admin/status`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use resilience::State;

use crate::upstream::Upstream;

/// The gateway's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
}

/// Labels of a request counted at the edge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template, e.g. `/api/users/{id}` (never the raw path, to bound cardinality).
    pub route: &'static str,
    /// The method (standard ones by name, others as `OTHER`).
    pub method: &'static str,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    upstream: String,
    endpoint: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

impl Metrics {
    /// A registry with the request counter and a collector over `upstreams`.
    pub fn new(upstreams: Vec<Upstream>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "gateway_requests",
            "Requests answered by the gateway, by route, method and status",
            requests.clone(),
        );
        registry.register_collector(Box::new(UpstreamCollector { upstreams }));
        Self {
            registry: Arc::new(registry),
            requests,
        }
    }

    /// Counts one answered request.
    pub fn count_request(&self, labels: RequestLabels) {
        self.requests.get_or_create(&labels).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Reads one counter of a breaker's metrics.
type Reading = fn(&resilience::CircuitBreakerMetrics) -> u64;

/// Reads the resilience stack's counters on each scrape.
#[derive(Debug)]
struct UpstreamCollector {
    upstreams: Vec<Upstream>,
}

/// A breaker state as a gauge value: 0 closed, 1 half-open, 2 open (forced states as their
/// unforced twins), so "> 0" means "not fully trusted".
fn state_value(state: State) -> i64 {
    match state {
        State::Closed | State::ForcedClosed => 0,
        State::HalfOpen => 1,
        State::Open | State::ForcedOpen => 2,
    }
}

impl UpstreamCollector {
    fn endpoints(&self) -> Vec<(EndpointLabels, resilience::CircuitBreakerMetrics)> {
        self.upstreams
            .iter()
            .flat_map(|upstream| {
                upstream.client.breakers().into_iter().map(move |breaker| {
                    let endpoint = breaker
                        .name()
                        .split_once('@')
                        .map_or(breaker.name(), |(_, url)| url)
                        .to_owned();
                    let labels = EndpointLabels {
                        upstream: upstream.service.to_owned(),
                        endpoint,
                    };
                    (labels, breaker.metrics())
                })
            })
            .collect()
    }
}

impl Collector for UpstreamCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let endpoints = self.endpoints();
        let gauge = ConstGauge::new(0i64);
        let counter = ConstCounter::new(0u64);

        let mut family = encoder.encode_descriptor(
            "gateway_breaker_state",
            "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open",
            None,
            gauge.metric_type(),
        )?;
        for (labels, metrics) in &endpoints {
            ConstGauge::new(state_value(metrics.state)).encode(family.encode_family(labels)?)?;
        }

        let per_endpoint: [(&str, &str, Reading); 3] = [
            (
                "gateway_upstream_attempts",
                "Attempts that reached an upstream endpoint and completed",
                |m| m.calls(),
            ),
            (
                "gateway_upstream_failures",
                "Attempts an endpoint's breaker counted as failures (errors, timeouts, 5xx)",
                |m| m.failures,
            ),
            (
                "gateway_breaker_rejections",
                "Attempts a breaker rejected without calling its endpoint",
                |m| m.rejected,
            ),
        ];
        for (name, help, value) in per_endpoint {
            let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            for (labels, metrics) in &endpoints {
                ConstCounter::new(value(metrics)).encode(family.encode_family(labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "gateway_upstream_retries",
            "Retries sent to an upstream",
            None,
            counter.metric_type(),
        )?;
        for upstream in &self.upstreams {
            let labels = UpstreamLabels {
                upstream: upstream.service.to_owned(),
            };
            ConstCounter::new(upstream.client.retry_metrics().retries)
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
