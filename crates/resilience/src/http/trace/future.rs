//! The future of an [`AttemptSpan`](super::AttemptSpan).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::error::BoxError;

pin_project! {
    /// The answer of one attempt, polled inside its span; the outcome is recorded on the span
    /// when it completes (`http.response.status_code`, or `error.type`), or as `cancelled` when
    /// it is dropped first (a hedge won, the deadline passed, the caller gave up).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        done: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                this.span.record("error.type", "cancelled");
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, span: tracing::Span) -> Self {
        Self {
            inner,
            span,
            done: false,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Inside the span, so what the layers below log (a breaker opening) lands on it.
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        *this.done = true;
        super::record_outcome(this.span, &result);
        Poll::Ready(result)
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}
