//! `GET /metrics`: Prometheus text from a registry the gateway owns.
//!
//! Request counts are counted as requests pass the edge. Upstream numbers (attempts, retries,
//! breaker states, rejections, the balancer's outstanding calls, estimates and ejections) are
//! read at scrape time from the same look as `/admin/status`, so the two never disagree.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use resilience::State;
use resilience::admin::EndpointSnapshot;

use crate::status::Upstreams;

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
    pub(crate) fn new(upstreams: Upstreams) -> Self {
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

/// Reads the resilience stack's view of the upstreams on each scrape.
#[derive(Debug)]
struct UpstreamCollector {
    upstreams: Upstreams,
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

/// Reads one number of an endpoint's snapshot.
type Reading<N> = fn(&EndpointSnapshot) -> N;

impl Collector for UpstreamCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let upstreams = self.upstreams.look();
        let endpoints: Vec<(EndpointLabels, &EndpointSnapshot)> = upstreams
            .iter()
            .flat_map(|upstream| {
                upstream.snapshot.endpoints.iter().map(|endpoint| {
                    let labels = EndpointLabels {
                        upstream: upstream.service.to_owned(),
                        endpoint: endpoint.endpoint.clone(),
                    };
                    (labels, endpoint)
                })
            })
            .collect();

        let gauges: [(&str, &str, Reading<i64>); 3] = [
            (
                "gateway_breaker_state",
                "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open",
                |endpoint| state_value(endpoint.state),
            ),
            (
                "gateway_endpoint_outstanding",
                "Calls outstanding per endpoint, as the load-aware balancer counts them",
                |endpoint| {
                    endpoint
                        .balancing
                        .as_ref()
                        .map_or(0, |b| i64::from(b.outstanding))
                },
            ),
            (
                "gateway_endpoint_ejected",
                "1 while the balancer holds an endpoint out as an outlier (its error rate stands \
                 above its peers'), else 0",
                |endpoint| {
                    let ejected = endpoint.balancing.as_ref().and_then(|b| b.ejected_for_ms);
                    i64::from(ejected.is_some())
                },
            ),
        ];
        for (name, help, value) in gauges {
            let mut family =
                encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
            for (labels, endpoint) in &endpoints {
                ConstGauge::new(value(endpoint)).encode(family.encode_family(labels)?)?;
            }
        }

        let fractions: [(&str, &str, Reading<Option<f64>>); 2] = [
            (
                "gateway_endpoint_latency_estimate_seconds",
                "The balancer's peak-EWMA latency estimate per endpoint (absent before an answer)",
                |endpoint| {
                    let estimate = endpoint.balancing.as_ref()?.latency_estimate_ms?;
                    Some(estimate / 1000.0)
                },
            ),
            (
                "gateway_endpoint_slow_start_weight",
                "Slow start's weight per endpoint: below 1 while it ramps up after coming back",
                |endpoint| endpoint.balancing.as_ref().map(|b| b.weight),
            ),
        ];
        for (name, help, value) in fractions {
            let mut family =
                encoder.encode_descriptor(name, help, None, ConstGauge::new(0f64).metric_type())?;
            for (labels, endpoint) in &endpoints {
                if let Some(value) = value(endpoint) {
                    ConstGauge::new(value).encode(family.encode_family(labels)?)?;
                }
            }
        }

        let counters: [(&str, &str, Reading<u64>); 3] = [
            (
                "gateway_upstream_attempts",
                "Attempts that reached an upstream endpoint and completed",
                |endpoint| endpoint.calls,
            ),
            (
                "gateway_upstream_failures",
                "Attempts an endpoint's breaker counted as failures (errors, timeouts, 5xx)",
                |endpoint| endpoint.failures,
            ),
            (
                "gateway_breaker_rejections",
                "Attempts a breaker rejected without calling its endpoint",
                |endpoint| endpoint.rejected,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for (labels, endpoint) in &endpoints {
                ConstCounter::new(value(endpoint)).encode(family.encode_family(labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "gateway_upstream_retries",
            "Retries sent to an upstream",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for upstream in &upstreams {
            let labels = UpstreamLabels {
                upstream: upstream.service.to_owned(),
            };
            ConstCounter::new(upstream.snapshot.retries.unwrap_or_default())
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
