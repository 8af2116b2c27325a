//! The future returned by [`CircuitBreaker`](super::CircuitBreaker).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::classify::Classify;
use super::error::CircuitOpen;
use super::permit::Permit;
use crate::error::BoxError;

pin_project! {
    /// Resolves to the inner service's response, or to a [`CircuitOpen`] error when the breaker
    /// rejected the call. Dropping it before it completes gives back a probe permit.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called {
            #[pin]
            future: F,
            permit: Permit,
            started: Option<Instant>,
            classifier: C,
        },
        Rejected {
            error: Option<CircuitOpen>,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    /// Builds the future around the inner service's `call`, so that its future is written
    /// straight into this one instead of being built apart and copied in.
    #[inline(always)]
    pub(crate) fn around(
        permit: Permit,
        started: Option<Instant>,
        classifier: C,
        call: impl FnOnce() -> F,
    ) -> Self {
        Self {
            kind: Kind::Called {
                permit,
                started,
                classifier,
                future: call(),
            },
        }
    }

    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                started,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                permit.settle(classifier.classify(&result), *started);
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .expect("a rejected circuit breaker future is polled after it completed")
                .into())),
        }
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
