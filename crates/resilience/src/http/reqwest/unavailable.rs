//! What a [`ResilientClient`](super::ResilientClient) says when none of its endpoints would take
//! a request: which upstream, the state of each endpoint, and when the soonest may probe.

use std::fmt;
use std::time::Duration;

use crate::balance::NoAvailableEndpoint;
use crate::circuit_breaker::{CircuitBreakerHandle, State};

/// No endpoint of an upstream admitted the request: every breaker open (or the endpoints
/// ejected), or none at all. The request reached no endpoint.
///
/// Its [`source`](std::error::Error::source) is the balancer's [`NoAvailableEndpoint`], so code
/// that looks for that one in the chain (with [`find_in_chain`](crate::error::find_in_chain))
/// finds it here too.
#[derive(Debug, Clone)]
pub struct UpstreamUnavailable {
    upstream: String,
    endpoints: Vec<(String, State)>,
    next_probe_in: Option<Duration>,
    source: NoAvailableEndpoint,
}

impl UpstreamUnavailable {
    /// The upstream `upstream` over `endpoints` (URL and breaker), as they are now.
    pub(super) fn now(
        upstream: &str,
        endpoints: impl IntoIterator<Item = (String, CircuitBreakerHandle)>,
        source: NoAvailableEndpoint,
    ) -> Self {
        let mut next_probe_in: Option<Duration> = None;
        let endpoints = endpoints
            .into_iter()
            .map(|(url, breaker)| {
                let metrics = breaker.metrics();
                if let Some(wait) = metrics.next_probe_in {
                    next_probe_in = Some(next_probe_in.map_or(wait, |soonest| soonest.min(wait)));
                }
                (url, metrics.state)
            })
            .collect();
        Self {
            upstream: upstream.to_owned(),
            endpoints,
            next_probe_in,
            source,
        }
    }

    /// The upstream's name.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Each endpoint's URL and its breaker's state when the request was refused.
    pub fn endpoints(&self) -> &[(String, State)] {
        &self.endpoints
    }

    /// How long until the soonest open breaker may probe; `None` when no breaker is waiting
    /// out an open period (forced open, half-open, or the endpoints are ejected).
    pub fn next_probe_in(&self) -> Option<Duration> {
        self.next_probe_in
    }
}

impl fmt::Display for UpstreamUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no endpoint of {:?} is admitting traffic", self.upstream)?;
        if self.endpoints.is_empty() {
            return f.write_str(" (it has none)");
        }
        f.write_str(" (")?;
        for (at, (url, state)) in self.endpoints.iter().enumerate() {
            if at > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{url} {state}")?;
        }
        if let Some(wait) = self.next_probe_in {
            write!(f, "; the soonest may probe in {wait:.1?}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UpstreamUnavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
