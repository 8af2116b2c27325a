//! The future returned by [`Hedge`](super::Hedge).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;

use super::Shared;
use crate::call_scope::abandon::abandon;
use crate::error::BoxError;

pin_project! {
    /// The first successful answer of the original call and its hedge. An error is returned
    /// only when no attempt that could still succeed is running.
    pub struct ResponseFuture<S, Request>
    where
        S: Service<Request>,
    {
        #[pin]
        primary: Option<S::Future>,
        #[pin]
        hedge: Option<S::Future>,
        #[pin]
        timer: Option<Sleep>,
        // The service clone and request copy for the hedge, until it is sent or given up.
        spare: Option<(S, Request)>,
        primary_error: Option<S::Error>,
        started: Instant,
        // `None` when the policy hedges nothing: no latency is recorded, no `Arc` cloned.
        shared: Option<Arc<Shared>>,
    }
}

impl<S: Service<Request>, Request> ResponseFuture<S, Request> {
    pub(crate) fn new(
        primary: S::Future,
        spare: Option<(S, Request)>,
        shared: Option<Arc<Shared>>,
    ) -> Self {
        Self {
            primary: Some(primary),
            hedge: None,
            timer: None,
            spare,
            primary_error: None,
            started: Instant::now(),
            shared,
        }
    }
}

impl<S, Request> Future for ResponseFuture<S, Request>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(primary) = this.primary.as_mut().as_pin_mut() {
                if let Poll::Ready(result) = primary.poll(cx) {
                    this.primary.set(None);
                    match result {
                        Ok(response) => {
                            if let Some(shared) = this.shared {
                                shared.record(*this.started);
                            }
                            // The copy lost; it says nothing about its endpoint.
                            this.hedge.set(None);
                            return Poll::Ready(Ok(response));
                        }
                        // Not hedged yet: fail now, and let a retry go elsewhere at once.
                        Err(error) if this.hedge.is_none() => {
                            return Poll::Ready(Err(error.into()));
                        }
                        Err(error) => *this.primary_error = Some(error),
                    }
                }
            }

            if let Some(hedge) = this.hedge.as_mut().as_pin_mut() {
                if let Poll::Ready(result) = hedge.poll(cx) {
                    this.hedge.set(None);
                    match result {
                        Ok(response) => {
                            if let Some(shared) = this.shared {
                                shared.count_win();
                            }
                            // The original lost to a whole exchange started a hedge delay
                            // later: its breaker counts a failure (see `crate::abandon`).
                            let mut primary = this.primary.as_mut();
                            abandon(|| primary.set(None));
                            return Poll::Ready(Ok(response));
                        }
                        Err(error) => match this.primary_error.take() {
                            Some(first) => return Poll::Ready(Err(first.into())),
                            None if this.primary.is_none() => {
                                return Poll::Ready(Err(error.into()));
                            }
                            None => {}
                        },
                    }
                }
            }

            let Some(shared) = this.shared.as_ref() else {
                return Poll::Pending;
            };
            if this.spare.is_none() || this.primary.is_none() {
                return Poll::Pending;
            }
            if this.timer.is_none() {
                // Armed only once the original has to wait, as in `crate::timeout`.
                match shared.delay() {
                    Some(delay) => this.timer.set(Some(sleep_until(*this.started + delay))),
                    None => {
                        *this.spare = None;
                        return Poll::Pending;
                    }
                }
            }
            let Some(timer) = this.timer.as_mut().as_pin_mut() else {
                return Poll::Pending;
            };
            if timer.poll(cx).is_pending() {
                return Poll::Pending;
            }
            let Some((service, _)) = this.spare.as_mut() else {
                return Poll::Pending;
            };
            match service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => {
                    let error: BoxError = error.into();
                    tracing::debug!(target: "resilience::hedge", %error, "not hedging: the service is not ready");
                }
                Poll::Ready(Ok(())) => {
                    if let Some((mut service, copy)) =
                        this.spare.take().filter(|_| shared.try_spend())
                    {
                        tracing::debug!(target: "resilience::hedge", "hedging: the call is slower than the hedge delay, racing a copy");
                        this.hedge.set(Some(service.call(copy)));
                    }
                }
            }
            *this.spare = None;
            this.timer.set(None);
            // Round again: the copy, if sent, is polled and registers its waker.
        }
    }
}
