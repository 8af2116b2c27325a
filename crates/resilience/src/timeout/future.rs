//! The future returned by [`Timeout`](super::Timeout) and [`Deadline`](super::Deadline).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use super::{DeadlineExceeded, Elapsed};
use crate::BoxError;

/// Which limit a future enforces, and so which error it fails with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    Attempt(Duration),
    Deadline(Duration),
}

impl Limit {
    fn duration(self) -> Duration {
        match self {
            Self::Attempt(limit) | Self::Deadline(limit) => limit,
        }
    }

    fn error(self) -> BoxError {
        match self {
            Self::Attempt(limit) => Elapsed::new(limit).into(),
            Self::Deadline(limit) => DeadlineExceeded::new(limit).into(),
        }
    }
}

pin_project! {
    /// The inner response, or a timeout error once the limit has passed since the call.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        expires: Instant,
        limit: Limit,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, limit: Limit) -> Self {
        Self {
            inner,
            sleep: None,
            expires: Instant::now() + limit.duration(),
            limit,
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
        let mut this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        if this.sleep.is_none() {
            // Armed only now that the inner future has to wait.
            this.sleep.set(Some(sleep_until(*this.expires)));
        }
        let sleep = this.sleep.as_pin_mut().expect("the timer was armed above");
        match sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(this.limit.error())),
            Poll::Pending => Poll::Pending,
        }
    }
}
