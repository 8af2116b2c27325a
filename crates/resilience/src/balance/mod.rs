//! Load balancing over endpoints that may refuse traffic.
//!
//! A balancer must know, before it sends a request, whether an endpoint will take it. Tower's
//! answer is readiness, and this crate uses it: a
//! [breaker](crate::circuit_breaker::CircuitBreaker) is not ready while it admits no calls, and
//! is woken when it may admit one again. So [`RoundRobin`], [`LeastLoaded`], tower's `p2c` and
//! any readiness-based balancer route around open breakers,
//! and any layer a user puts between the balancer and the breakers (a `TraceLayer`, `MapErr`,
//! `ConcurrencyLimit`, a `BoxCloneService`) passes readiness on, as every tower service does.
//!
//! A readiness-based balancer whose endpoints are all not ready waits. That is right for
//! endpoints that are busy (a concurrency limit), and wrong for a client whose every breaker is
//! open: [`FailFast`] turns "no endpoint ready now" into [`NoAvailableEndpoint`] at once.
//!
//! Why not a trait of the crate's own for "would you admit a call"? Every wrapper between the
//! balancer and the breaker would have to pass it on, and a `BoxCloneService` cannot: an earlier
//! version of this crate had one (`Admit`), and a `TraceLayer` between the two stopped the
//! stack compiling.

mod endpoints;
mod error;
mod fail_fast;
pub mod future;
pub mod least_loaded;
mod round_robin;

pub use self::error::NoAvailableEndpoint;
pub use self::fail_fast::{FailFast, FailFastLayer};
pub use self::least_loaded::{
    EndpointStatus, LeastLoaded, LeastLoadedConfig, LeastLoadedConfigBuilder, LeastLoadedHandle,
    OutlierDetection, OutlierDetectionBuilder,
};
pub use self::round_robin::{RoundRobin, RoundRobinHandle};

/// Whether a retry would find an endpoint that can take it now, other than one that just
/// failed: a [`RetryPolicy`](crate::retry::RetryPolicy) given one
/// ([`alternatives`](crate::retry::RetryPolicyBuilder::alternatives)) retries an endpoint's
/// failure at once while it says yes, since the balancer sends the retry elsewhere, and backs
/// off when it says no. [`LeastLoadedHandle`] is one.
pub trait Alternatives: Send + Sync + 'static {
    /// Whether some endpoint would take a call now and did not fail its last one.
    fn has_healthy_endpoint(&self) -> bool;
}

impl<K: Send + Sync + 'static, S: Send + Sync + 'static> Alternatives for LeastLoadedHandle<K, S> {
    fn has_healthy_endpoint(&self) -> bool {
        LeastLoadedHandle::has_healthy_endpoint(self)
    }
}

#[cfg(test)]
mod tests;
