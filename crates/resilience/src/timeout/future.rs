//! The future returned by [`Timeout`](super::Timeout) and [`Deadline`](super::Deadline).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use super::{DeadlineExceeded, Elapsed};
use crate::call_scope::timer;
use crate::error::BoxError;

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
    /// Builds the future around the one `call` makes. Taking the call rather than its future
    /// lets the compiler write that future straight into this one's field: moved in as an
    /// argument, it was copied through the stack, and the copy's wide reads stalled on the
    /// narrow writes that had just built it.
    #[inline(always)]
    pub(crate) fn around(started: Instant, limit: Limit, call: impl FnOnce() -> F) -> Self {
        Self {
            expires: started + limit.duration(),
            limit,
            sleep: None,
            inner: call(),
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
        // What is known to have passed: the instant this limit's own timer fired for, or what
        // the enclosing limit's did.
        let mut due = timer::due(cx.waker());
        let mut woken_early = false;
        loop {
            let (polled, asked) = timer::within(cx.waker(), due, || this.inner.as_mut().poll(cx));
            if let Poll::Ready(result) = polled {
                return Poll::Ready(result.map_err(Into::into));
            }
            if due.is_some_and(|due| due >= *this.expires) {
                return Poll::Ready(Err(this.limit.error()));
            }
            let wake_at = asked.map_or(*this.expires, |at| at.min(*this.expires));
            if this.sleep.is_none() {
                if timer::defer_wake(cx.waker(), wake_at) {
                    return Poll::Pending;
                }
                // Armed only now that the inner future has to wait, and only by the outermost
                // limit of the task.
                #[cfg(test)]
                OWN_TIMERS.set(OWN_TIMERS.get() + 1);
                this.sleep.set(Some(sleep_until(wake_at)));
            }
            let mut sleep = this
                .sleep
                .as_mut()
                .as_pin_mut()
                .expect("the timer was armed above");
            if sleep.deadline() != wake_at {
                sleep.as_mut().reset(wake_at);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Due now: this limit, or one inside, which fails when polled again. If one asks for
            // a time already past, let the task run again rather than spin.
            if woken_early && wake_at < *this.expires {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            woken_early = true;
            due = Some(wake_at);
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Timers armed by limits on this thread, for the tests of sharing one.
    pub(super) static OWN_TIMERS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
