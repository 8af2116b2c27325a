use std::sync::Arc;

use tower_layer::Layer;

use super::{CircuitBreaker, CircuitBreakerConfig, ErrorsAreFailures};

/// Wraps services in a [`CircuitBreaker`].
///
/// Every service the layer wraps gets a breaker of its own: applying one layer to each endpoint
/// of a balancer gives each endpoint an independent breaker. Clones of a wrapped service share
/// that service's breaker.
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
            gated: false,
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

    /// Makes breakers that gate readiness, for endpoints under a balancer (see
    /// [`CircuitBreaker::gate_readiness`]).
    pub fn gate_readiness(mut self) -> Self {
        self.gated = true;
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
            breaker.gate_readiness()
        } else {
            breaker
        }
    }
}
