//! Time limits: [`Timeout`] for one attempt, [`Deadline`] for a whole request.
//!
//! Unlike `tower::timeout::Timeout`, the timer here is only armed when the inner future first
//! returns `Pending`: a response that is ready at once costs one clock read, not a timer
//! registration. The limit still counts from the call, so the first poll's wait is not lost.
//! And limits nest on one timer: a [`Timeout`] polled inside a [`Deadline`] (or any limit of
//! this module inside another, on the same task) has the outer limit's timer wake the task at
//! whichever expiry comes first, so a request that waits registers one timer, not one per limit.
//!
//! The two differ in their error, so logs and status codes can tell a slow upstream
//! ([`Elapsed`]: that attempt is over, a retry may follow) from an exhausted budget of time
//! ([`DeadlineExceeded`]: the whole request is over). Put the deadline outside
//! [`Retry`](tower::retry::Retry) and the per-attempt timeout inside it; give
//! [`RetryPolicy`](crate::retry::RetryPolicy) the same deadline so it does not start a retry that cannot
//! finish in time.
//!
//! **Names shared with tower and tokio.** [`Timeout`], [`TimeoutLayer`] and [`Elapsed`] are
//! this crate's own types, not re-exports of `tower::timeout::{Timeout, TimeoutLayer}` or
//! `tokio::time::error::Elapsed`: they differ in the timer sharing above and in the error
//! (this [`Elapsed`] says how long the limit was). Where both are in scope, import one under
//! another name (`use resilience::timeout::Timeout as AttemptTimeout;`) or by path, and look for
//! an attempt's timeout in an error chain with this crate's [`Elapsed`]
//! (`find_in_chain::<resilience::Elapsed>`): tower's `Elapsed` is a different type and is not
//! found that way.

mod error;
pub mod future;

use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

pub use self::error::{DeadlineExceeded, Elapsed};
use self::future::{Limit, ResponseFuture};
use crate::call_scope::clock;
use crate::error::BoxError;

/// Fails an attempt that takes longer than a limit, with [`Elapsed`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

/// Fails a whole request (every attempt and backoff) that takes longer than a limit, with
/// [`DeadlineExceeded`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    limit: Duration,
}

/// Wraps services in a [`Timeout`].
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

/// Wraps services in a [`Deadline`].
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    limit: Duration,
}

impl TimeoutLayer {
    /// Each attempt may take up to `limit`.
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl DeadlineLayer {
    /// Each request may take up to `limit`, retries included.
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.limit)
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline::new(inner, self.limit)
    }
}

macro_rules! limited_service {
    ($service:ident, $kind:expr) => {
        impl<S> $service<S> {
            /// Wraps `inner`, limiting each call to `limit`.
            pub fn new(inner: S, limit: Duration) -> Self {
                Self { inner, limit }
            }

            /// The limit.
            pub fn limit(&self) -> Duration {
                self.limit
            }

            /// The inner service.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The inner service, mutably.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// Unwraps the inner service.
            pub fn into_inner(self) -> S {
                self.inner
            }
        }

        impl<S, Request> Service<Request> for $service<S>
        where
            S: Service<Request>,
            S::Error: Into<BoxError>,
        {
            type Response = S::Response;
            type Error = BoxError;
            type Future = ResponseFuture<S::Future>;

            fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx).map_err(Into::into)
            }

            fn call(&mut self, request: Request) -> Self::Future {
                let started = clock::now();
                ResponseFuture::around(started, $kind(self.limit), || {
                    clock::during(started, || self.inner.call(request))
                })
            }
        }
    };
}

limited_service!(Timeout, Limit::Attempt);
limited_service!(Deadline, Limit::Deadline);

#[cfg(test)]
mod tests;
