//! The operator's one view of the upstreams: `/admin/status` and `/metrics` both read a look at
//! the resilience crate's admin registry, the snapshot `/admin/breakers` and the dashboard
//! serve, so the three never disagree and nothing here reads a breaker's name back.

use resilience::admin::{Registry, UpstreamSnapshot};
use serde::Serialize;

use crate::upstream::Upstream;

/// One upstream as the operator sees it: the crate's snapshot of its endpoints (breaker state
/// and counts, latency, what the load-aware balancer knows), under the service's public name.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UpstreamView {
    /// How clients see it named, e.g. `user-service`.
    pub(crate) service: &'static str,
    /// Whether an endpoint admits traffic (what `/ready` answers).
    pub(crate) ready: bool,
    /// Retries the policy would have sent but did not.
    pub(crate) retries_refused: RetriesRefused,
    #[serde(flatten)]
    pub(crate) snapshot: UpstreamSnapshot,
}

/// Why retries were not sent.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct RetriesRefused {
    /// The retry budget was spent.
    pub(crate) budget_exhausted: u64,
    /// Too little of the deadline was left.
    pub(crate) out_of_time: u64,
}

/// The upstreams and the registry that watches their clients.
#[derive(Debug, Clone)]
pub(crate) struct Upstreams {
    upstreams: Vec<Upstream>,
    registry: Registry,
}

impl Upstreams {
    /// Watches each upstream's client in `registry`.
    pub(crate) fn watch(upstreams: Vec<Upstream>, registry: Registry) -> Self {
        for upstream in &upstreams {
            registry.add_client(&upstream.client);
        }
        Self {
            upstreams,
            registry,
        }
    }

    /// Every upstream now, in the order they were given.
    pub(crate) fn look(&self) -> Vec<UpstreamView> {
        let mut snapshot = self.registry.snapshot();
        self.upstreams
            .iter()
            .filter_map(|upstream| {
                let at = snapshot
                    .upstreams
                    .iter()
                    .position(|view| view.name == upstream.client.name())?;
                let retries = upstream.client.retry_metrics();
                Some(UpstreamView {
                    service: upstream.service,
                    ready: upstream.is_ready(),
                    retries_refused: RetriesRefused {
                        budget_exhausted: retries.budget_exhausted,
                        out_of_time: retries.out_of_time,
                    },
                    snapshot: snapshot.upstreams.swap_remove(at),
                })
            })
            .collect()
    }
}
