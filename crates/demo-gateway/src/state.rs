//! What every handler shares.

use std::sync::Arc;

use resilience::admin::{Admin, Registry};

use crate::access::{AdminKeys, ApiKeys};
use crate::metrics::Metrics;
use crate::routes;
use crate::status::Upstreams;
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
    admin_keys: AdminKeys,
    admin: Admin,
    upstreams: Upstreams,
    metrics: Metrics,
}

impl GatewayState {
    /// State over the two upstreams, accepting `keys` from clients and no operator (see
    /// [`with_admin_keys`](Self::with_admin_keys)).
    pub fn new(users: Upstream, orders: Upstream, keys: ApiKeys) -> Self {
        Self::with_admin_keys(users, orders, keys, AdminKeys::default())
    }

    /// State over the two upstreams, accepting `keys` from clients and `admin_keys` from
    /// operators on `/admin` and `/metrics`.
    pub fn with_admin_keys(
        users: Upstream,
        orders: Upstream,
        keys: ApiKeys,
        admin_keys: AdminKeys,
    ) -> Self {
        let registry = Registry::new();
        let upstreams = Upstreams::watch(vec![users.clone(), orders.clone()], registry.clone());
        let metrics = Metrics::new(upstreams.clone());
        Self {
            inner: Arc::new(Inner {
                users,
                orders,
                keys,
                admin_keys,
                admin: Admin::new(registry).mounted_at(routes::ADMIN),
                upstreams,
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

    /// The operator keys.
    pub fn admin_keys(&self) -> &AdminKeys {
        &self.inner.admin_keys
    }

    /// The dashboard, its stream and the breaker actions, under `/admin`.
    pub fn admin(&self) -> &Admin {
        &self.inner.admin
    }

    /// Both upstreams as the operator sees them.
    pub(crate) fn upstreams(&self) -> &Upstreams {
        &self.inner.upstreams
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}
