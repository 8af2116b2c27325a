use std::sync::Arc;

use tower_layer::Layer;

use super::{CircuitBreaker, CircuitBreakerConfig, ErrorsAreFailures};

/// Wraps services in a [`CircuitBreaker`].
///
/// Every service the layer wraps gets a breaker of its own: applying one layer to each endpoint
/// of a balancer gives each endpoint an independent breaker. Clones of a wrapped service share
/// that service's breaker.
///
/// The handle of a breaker (its state, counters and operator controls) comes from the service
/// the layer made, [`CircuitBreaker::handle`]. When other layers wrap that service, reach it
/// through theirs (tower's `Retry` outside: `service.get_ref().handle()`), or make the breaker
/// first and take its handle before wrapping it:
///
/// ```
/// use tower::{Layer, ServiceBuilder, retry::RetryLayer, service_fn};
/// use resilience::{BoxError, CircuitBreakerConfig, CircuitBreakerLayer, RetryPolicy, State};
///
/// # fn main() -> Result<(), BoxError> {
/// let breaker = CircuitBreakerLayer::new(CircuitBreakerConfig::default())
///     .named("users")
///     .layer(service_fn(|id: u32| async move { Ok::<_, BoxError>(id) }));
/// let handle = breaker.handle();
/// let service = ServiceBuilder::new()
///     .layer(RetryLayer::new(RetryPolicy::builder().build()?))
///     .service(breaker);
/// assert_eq!(service.get_ref().handle().name(), handle.name());
/// assert_eq!(handle.state(), State::Closed);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = ErrorsAreFailures> {
    config: CircuitBreakerConfig,
    classifier: C,
    name: Option<Arc<str>>,
    gated: bool,
}

impl CircuitBreakerLayer {
    /// A layer with the given configuration, counting every `Err` as a failure.
    pub fn new(config: CircuitBreakerConfig) -> Self {
        Self {
            config,
            classifier: ErrorsAreFailures,
            name: None,
            gated: true,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Decides what counts as a failure with `classifier` (see [`Classify`](super::Classify)).
    pub fn with_classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            config: self.config,
            classifier,
            name: self.name,
            gated: self.gated,
        }
    }

    /// Makes breakers that are always ready and fail `call` with
    /// [`CircuitOpen`](super::CircuitOpen) while open, for a breaker used alone (see
    /// [`CircuitBreaker::reject_when_open`]). Not for endpoints under a balancer.
    pub fn reject_when_open(mut self) -> Self {
        self.gated = false;
        self
    }

    /// Names the breakers this layer makes, for logs, events and errors.
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        let name = self.name.clone().unwrap_or_else(|| Arc::from("unnamed"));
        let breaker = CircuitBreaker::build(inner, &self.config, self.classifier.clone(), name);
        if self.gated {
            breaker
        } else {
            breaker.reject_when_open()
        }
    }
}
