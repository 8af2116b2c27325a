//! The future returned by [`LeastLoaded`](super::LeastLoaded).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::load::EndpointLoad;
use crate::balance::NoAvailableEndpoint;
use crate::circuit_breaker::{Classify, Outcome};
use crate::error::BoxError;

pin_project! {
    /// The chosen endpoint's response, or [`NoAvailableEndpoint`] at once. When it completes
    /// (or is dropped), the endpoint's calls outstanding, latency estimate and outcomes are
    /// updated.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F>,
        in_flight: Option<InFlight<C>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Unavailable { error: Option<NoAvailableEndpoint> },
    }
}

/// A call counted against its endpoint until it ends; dropped unfinished, it was cancelled.
struct InFlight<C> {
    load: Arc<EndpointLoad>,
    started: Instant,
    classifier: C,
    settled: bool,
}

impl<C> InFlight<C> {
    fn settle(mut self, failed: bool) {
        self.settled = true;
        self.load.finish(self.started.elapsed(), Some(failed), true);
    }
}

impl<C> Drop for InFlight<C> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Cancelled. A hedge's abandoned original lost to a whole second exchange: it was slow,
        // and its latency so far says so. Any other cancellation says nothing of the endpoint.
        let abandoned = crate::call_scope::abandon::abandoning();
        self.load.finish(self.started.elapsed(), None, abandoned);
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline(always)]
    pub(crate) fn around(load: Arc<EndpointLoad>, classifier: C, call: impl FnOnce() -> F) -> Self {
        load.start();
        let started = crate::call_scope::clock::now();
        Self {
            kind: Kind::Called { future: call() },
            in_flight: Some(InFlight {
                load,
                started,
                classifier,
                settled: false,
            }),
        }
    }

    pub(crate) fn unavailable(error: NoAvailableEndpoint) -> Self {
        Self {
            kind: Kind::Unavailable { error: Some(error) },
            in_flight: None,
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
        let this = self.project();
        match this.kind.project() {
            KindProj::Called { future } => {
                let result = std::task::ready!(future.poll(cx));
                if let Some(call) = this.in_flight.take() {
                    let failed = call.classifier.classify(&result) == Outcome::Failure;
                    call.settle(failed);
                }
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Unavailable { error } => Poll::Ready(Err(error
                .take()
                .expect("a least-loaded future is polled after it completed")
                .into())),
        }
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
