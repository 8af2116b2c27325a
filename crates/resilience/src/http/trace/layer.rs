use tower_layer::Layer;

use super::AttemptSpan;

/// Wraps a service in an [`AttemptSpan`]: one OpenTelemetry client span per attempt, and a
/// `traceparent` naming it on the request.
///
/// Place it once per endpoint, inside the balancer and outside the endpoint's breaker and
/// attempt timeout (see [the module docs](super)). Each service it makes takes OpenTelemetry's
/// global tracer then, so install the application's tracer provider before building the stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttemptSpanLayer {
    _private: (),
}

impl AttemptSpanLayer {
    /// The layer.
    pub fn new() -> Self {
        Self { _private: () }
    }
}

impl<S> Layer<S> for AttemptSpanLayer {
    type Service = AttemptSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttemptSpan::new(inner)
    }
}
