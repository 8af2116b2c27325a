//! Answering at once when a balancer has no endpoint ready.

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::NoAvailableEndpoint;
use super::future::ResponseFuture;
use crate::error::BoxError;

/// Fails a request at once with [`NoAvailableEndpoint`] when the service under it (a balancer)
/// is not ready, instead of waiting for it.
///
/// Behind a balancer of [breakers](crate::circuit_breaker::CircuitBreaker), "not ready" means
/// every breaker is open: the caller should hear so now (a gateway answers 503), not at
/// its deadline. Like tower's `LoadShed`, but with this crate's local rejection, which
/// [`RetryPolicy`](crate::retry::RetryPolicy) does not retry; unlike it, it also sheds when the
/// endpoints are merely busy, so leave it out where waiting for a busy endpoint is wanted.
///
/// **Directly over the balancer.** It sees only the readiness of the service right under it.
/// Tower's `Buffer` is always ready while its queue has room, whatever the balancer behind it
/// says, so a `FailFast` outside a `Buffer` never sheds and requests wait in the queue until
/// their deadline. Tower's p2c `Balance` is not `Clone`, so a `Retry` over it needs a `Buffer`:
/// put this layer inside that `Buffer`, between it and the balancer (`Retry → Buffer → FailFast
/// → Balance`; `examples/p2c.rs`). This crate's balancers are `Clone` and need no `Buffer`.
///
/// ```
/// use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
/// use resilience::{CircuitBreakerConfig, CircuitBreakerLayer, FailFastLayer, NoAvailableEndpoint, RoundRobin};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), resilience::BoxError> {
/// let config = CircuitBreakerConfig::builder().consecutive_failures(1).build()?;
/// let down = CircuitBreakerLayer::new(config)
///
///     .layer(service_fn(|_: ()| async { Err::<(), _>("connection refused") }));
/// let mut client = ServiceBuilder::new()
///     .layer(FailFastLayer::new())
///     .service(RoundRobin::new([("only", down)]));
/// assert!(client.ready().await?.call(()).await.is_err()); // trips the breaker
/// let error = client.ready().await?.call(()).await.unwrap_err();
/// assert!(error.downcast_ref::<NoAvailableEndpoint>().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FailFast<S> {
    inner: S,
    ready: bool,
}

/// Wraps a service in [`FailFast`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FailFastLayer {
    _private: (),
}

impl FailFastLayer {
    /// A layer that fails requests at once when the service under it is not ready.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for FailFastLayer {
    type Service = FailFast<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FailFast::new(inner)
    }
}

impl<S> FailFast<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            ready: false,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Request> Service<Request> for FailFast<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.ready = match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
            Poll::Pending => false,
        };
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if std::mem::take(&mut self.ready) {
            ResponseFuture::around(|| self.inner.call(request))
        } else {
            ResponseFuture::unavailable(NoAvailableEndpoint::not_ready())
        }
    }
}
