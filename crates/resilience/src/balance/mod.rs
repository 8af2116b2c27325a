//! Load balancing over endpoints that may refuse traffic.
//!
//! A balancer must know, before it sends a request, whether an endpoint will take it. Tower's
//! readiness (`poll_ready`) cannot say so for a circuit breaker: an open breaker is not "busy"
//! (its caller should go elsewhere at once, not wait), and a readiness error means "discard this
//! service for good". So endpoints tell the balancer through [`Admit`], the way tower's balancers
//! learn an endpoint's load through `tower::load::Load`: [`CircuitBreaker`](crate::CircuitBreaker)
//! implements it, [`Timeout`](crate::Timeout) passes it through, and [`AlwaysAdmit`] wraps a
//! service that has no breaker.

mod error;
pub mod future;
mod round_robin;

use std::task::{Context, Poll};

use tower_service::Service;

pub use self::error::NoAvailableEndpoint;
pub use self::round_robin::{RoundRobin, RoundRobinHandle};

/// An endpoint that can say whether it will take the next call.
pub trait Admit {
    /// A cheap hint: would a call made now be admitted? Balancers skip endpoints that say no.
    fn admits(&self) -> bool;

    /// Reserves admission for the next [`call`](Service::call) on this instance, and says
    /// whether it got it. A half-open breaker has only a few probe permits: taking one here,
    /// before the balancer commits to this endpoint, is what keeps racing callers from being
    /// rejected after they were routed to it.
    fn try_admit(&mut self) -> bool;
}

/// A service without a breaker, which always admits.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysAdmit<S>(pub S);

impl<S> Admit for AlwaysAdmit<S> {
    fn admits(&self) -> bool {
        true
    }

    fn try_admit(&mut self) -> bool {
        true
    }
}

impl<S: Service<Request>, Request> Service<Request> for AlwaysAdmit<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.0.call(request)
    }
}

#[cfg(test)]
mod tests;
