//! Errors shared by every layer of the crate.

/// The error type of every service in this crate.
///
/// Like tower's own middleware, each layer adds failures of its own (a [`CircuitOpen`], an
/// [`Elapsed`], ...) to the inner service's error, so the combined type is a boxed error that
/// callers inspect with `downcast_ref`.
///
/// [`CircuitOpen`]: crate::circuit_breaker::CircuitOpen
/// [`Elapsed`]: crate::timeout::Elapsed
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
/// [`Elapsed`](crate::timeout::Elapsed)'s neighbour; this finds what happened wherever it sits:
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

/// `error` and each of its sources, joined by `": "`: what went wrong all the way down, for a
/// log line. Layers and clients wrap errors, and the outer message alone often says too little:
///
/// ```
/// use std::fmt;
/// use resilience::chain_text;
///
/// #[derive(Debug)]
/// struct Sending(std::io::Error);
///
/// impl fmt::Display for Sending {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         f.write_str("error sending request")
///     }
/// }
///
/// impl std::error::Error for Sending {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
///
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// assert_eq!(chain_text(&Sending(refused)), "error sending request: connection refused");
/// ```
pub fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(&'static str, Option<Box<dyn std::error::Error + 'static>>);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref()
        }
    }

    #[test]
    fn the_chain_text_names_every_cause_in_order() {
        let refused = Wrapped("connection refused", None);
        let connect = Wrapped("tcp connect error", Some(Box::new(refused)));
        let sending = Wrapped("error sending request", Some(Box::new(connect)));
        assert_eq!(
            chain_text(&sending),
            "error sending request: tcp connect error: connection refused"
        );
    }
}
