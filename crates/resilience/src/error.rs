//! Errors shared by every layer of the crate.

/// The error type of every service in this crate.
///
/// Like tower's own middleware, each layer adds failures of its own (a [`CircuitOpen`], an
/// [`Elapsed`], ...) to the inner service's error, so the combined type is a boxed error that
/// callers inspect with `downcast_ref`.
///
/// [`CircuitOpen`]: crate::CircuitOpen
/// [`Elapsed`]: crate::Elapsed
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A configuration that cannot work, caught when it is built rather than when traffic flows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {component} configuration: {reason}")]
pub struct InvalidConfig {
    component: &'static str,
    reason: String,
}

impl InvalidConfig {
    pub(crate) fn new(component: &'static str, reason: impl Into<String>) -> Self {
        Self {
            component,
            reason: reason.into(),
        }
    }

    /// The part of the configuration that is wrong, e.g. `"circuit breaker"`.
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// The first error of type `E` in `error` and its chain of sources.
///
/// Layers box the errors of the layers inside them, and a `reqwest::Error` may hide behind an
/// [`Elapsed`](crate::Elapsed)'s neighbour; this finds what happened wherever it sits:
///
/// ```
/// use resilience::{BoxError, CircuitOpen, find_in_chain};
///
/// fn is_circuit_open(error: &BoxError) -> bool {
///     find_in_chain::<CircuitOpen>(error.as_ref()).is_some()
/// }
/// # assert!(!is_circuit_open(&"boom".into()));
/// ```
pub fn find_in_chain<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}
