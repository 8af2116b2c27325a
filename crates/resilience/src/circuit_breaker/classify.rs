//! What counts as a failure: a classifier, kept apart from the breaker so that what a failure is
//! (errors; for HTTP, 5xx and timeouts) and when to trip (the policy) change independently.

/// How a call went, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The service did its job (a 404 is the client's fault, not the service's).
    Success,
    /// The service failed; the breaker counts it.
    Failure,
}

/// Decides whether a call's result counts as a failure.
///
/// Closures work too: `|result: &Result<u16, E>| ...` returning an [`Outcome`].
pub trait Classify<T, E> {
    /// Classifies one result.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

/// The default classifier: every `Err` is a failure, every `Ok` a success.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAreFailures;

impl<T, E> Classify<T, E> for ErrorsAreFailures {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

impl<F, T, E> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}
