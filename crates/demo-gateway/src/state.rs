//! What every handler shares.

use std::sync::Arc;

use crate::edge::ApiKeys;
use crate::metrics::Metrics;
use crate::upstream::Upstream;

/// The gateway's state: its upstreams, keys and metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    users: Upstream,
    orders: Upstream,
    keys: ApiKeys,
    metrics: Metrics,
}

impl GatewayState {
    /// State over the two upstreams, accepting `keys`.
    pub fn new(users: Upstream, orders: Upstream, keys: ApiKeys) -> Self {
        let metrics = Metrics::new(vec![users.clone(), orders.clone()]);
        Self {
            inner: Arc::new(Inner {
                users,
                orders,
                keys,
                metrics,
            }),
        }
    }

    /// The users service.
    pub fn users(&self) -> &Upstream {
        &self.inner.users
    }

    /// The order service.
    pub fn orders(&self) -> &Upstream {
        &self.inner.orders
    }

    /// The API keys and their rate limits.
    pub fn keys(&self) -> &ApiKeys {
        &self.inner.keys
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}
