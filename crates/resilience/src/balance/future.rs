//! The future returned by [`RoundRobin`](super::RoundRobin) and [`FailFast`](super::FailFast).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::NoAvailableEndpoint;
use crate::error::BoxError;

pin_project! {
    /// The chosen endpoint's response, or [`NoAvailableEndpoint`] at once.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Unavailable { error: Option<NoAvailableEndpoint> },
    }
}

impl<F> ResponseFuture<F> {
    /// Builds the future around the endpoint's `call`, so that its future is written straight
    /// into this one instead of being built apart and copied in.
    #[inline(always)]
    pub(crate) fn around(call: impl FnOnce() -> F) -> Self {
        Self {
            kind: Kind::Called { future: call() },
        }
    }

    pub(crate) fn unavailable(error: NoAvailableEndpoint) -> Self {
        Self {
            kind: Kind::Unavailable { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called { future } => future.poll(cx).map_err(Into::into),
            KindProj::Unavailable { error } => Poll::Ready(Err(error
                .take()
                .expect("a round-robin future is polled after it completed")
                .into())),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
