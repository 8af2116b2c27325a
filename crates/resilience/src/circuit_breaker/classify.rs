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
/// A breaker classifies what the service inside it returns. When that service is one of this
/// crate's layers (a [`TimeoutLayer`](crate::TimeoutLayer) inside the breaker, say), its error is
/// [`BoxError`](crate::BoxError), so the classifier is written over
/// `Result<Response, BoxError>` and finds the inner error with `downcast_ref`.
///
/// Closures work too: `|result: &Result<u16, BoxError>| ...` returning an [`Outcome`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot classify a `Result<{T}, {E}>`",
    label = "the breaker's inner service answers `Result<{T}, {E}>`",
    note = "a breaker's classifier sees the error of the service inside the breaker; with any of this crate's layers inside (a `TimeoutLayer`, say) that error is `resilience::BoxError`",
    note = "write the classifier for `&Result<Response, BoxError>` and find your error with `error.downcast_ref::<YourError>()`"
)]
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
