//! What is worth retrying.

use std::time::Duration;

use crate::balance::NoAvailableEndpoint;
use crate::circuit_breaker::CircuitOpen;
use crate::error::BoxError;
use crate::error::find_in_chain;
use crate::timeout::DeadlineExceeded;

/// What to do with a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Return it to the caller.
    DoNotRetry,
    /// Retry after the policy's backoff.
    Retry,
    /// Retry at once, without backoff, within the budget: the endpoint broke the connection
    /// (reset, closed mid-answer), so it is gone rather than busy, and a backoff would only
    /// delay the answer another endpoint can give now.
    RetryAtOnce,
    /// Retry at once, without backoff and without spending the retry budget: the request never
    /// reached the service (its connection was refused), so sending it elsewhere adds no load
    /// to anything that is failing.
    RetryNeverSent,
    /// Retry, but not before this long (the server said so, e.g. with `Retry-After`).
    RetryAfter(Duration),
}

/// Decides which requests can be retried and which results should be.
///
/// tower's `Retry` hands the rules what the service inside it returns. Every layer of this crate
/// (a breaker, a balancer, [`FailFast`](crate::FailFast), a timeout) fails with [`BoxError`],
/// so rules used over them are written for `Result<Response, BoxError>` and find an inner
/// error with `downcast_ref` (or [`find_in_chain`](crate::find_in_chain)).
#[diagnostic::on_unimplemented(
    message = "`{Self}` are not retry rules for `{Request}` answered by `Result<{Response}, {Error}>`",
    label = "the service inside `Retry` answers `Result<{Response}, {Error}>`",
    note = "tower's `Retry` gives its policy's rules the error of the service inside it; every layer of this crate (breaker, balancer, `FailFast`, timeout) fails with `resilience::BoxError`",
    note = "write the rules for `RetryRules<Request, Response, BoxError>` and find your error with `error.downcast_ref::<YourError>()`"
)]
pub trait RetryRules<Request, Response, Error> {
    /// A copy of the request to send again, or `None` if it cannot be copied (it is then sent
    /// once, and not retried).
    fn clone_request(&self, request: &Request) -> Option<Request>;

    /// Whether `result`, the answer to `request`, should be retried.
    fn classify(&self, request: &Request, result: &Result<Response, Error>) -> RetryDecision;

    /// Called on the copy about to be sent again, once the policy has decided to retry:
    /// `resend_count` is 1 for the first retry, 2 for the second. The HTTP rules record it on
    /// the request, for the per-attempt span's `http.request.resend_count`. Does nothing by
    /// default.
    fn prepare_resend(&self, request: &mut Request, resend_count: u32) {
        let _ = (request, resend_count);
    }
}

/// Retries every error except this crate's local rejections; never retries a response.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryErrors;

impl<Request: Clone, Response> RetryRules<Request, Response, BoxError> for RetryErrors {
    fn clone_request(&self, request: &Request) -> Option<Request> {
        Some(request.clone())
    }

    fn classify(&self, _: &Request, result: &Result<Response, BoxError>) -> RetryDecision {
        match result {
            Err(error) if !is_local_rejection(error.as_ref()) => RetryDecision::Retry,
            _ => RetryDecision::DoNotRetry,
        }
    }
}

/// Whether an error is a decision of this crate's own layers rather than a failure of the
/// service behind them: an open circuit, no endpoint admitting traffic, or a spent deadline.
pub fn is_local_rejection(error: &(dyn std::error::Error + 'static)) -> bool {
    find_in_chain::<CircuitOpen>(error).is_some()
        || find_in_chain::<NoAvailableEndpoint>(error).is_some()
        || find_in_chain::<DeadlineExceeded>(error).is_some()
}
