//! The readiness gate: a breaker that tells a balancer "not now" through `poll_ready`.
//!
//! Tower's balancers (`p2c`, and [`RoundRobin`](crate::balance::RoundRobin)) choose among endpoints
//! that are ready. A gated breaker is not ready while it admits no calls, and is woken when it
//! may admit one again: when its open duration ends (a timer), or when any transition happens
//! (its health check passed, a probe settled, an operator acted). This is how linkerd's
//! breakers gate endpoints. Readiness also reserves the admission: a half-open breaker with one
//! probe permit is ready for exactly one caller, and the permit goes with that caller's `call`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep, sleep_until};

use super::permit::Permit;
use super::state::Breaker;

/// The gate of one breaker instance: the admission it reserved, and the timer that wakes it
/// when the open duration ends.
#[derive(Default)]
pub(crate) struct Gate {
    reserved: Option<Permit>,
    wake_at: Option<Pin<Box<Sleep>>>,
}

impl Gate {
    /// Ready once the breaker admits a call, which is then reserved for the next `call`.
    #[inline]
    pub(crate) fn poll_admit(&mut self, breaker: &Breaker, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self
                .reserved
                .as_ref()
                .is_some_and(|permit| breaker.is_current(permit))
            {
                return Poll::Ready(());
            }
            // A permit from before a transition would let a call through a breaker that has
            // since opened: give it back and ask again.
            self.reserved = None;
            match breaker.acquire_quietly() {
                Ok(permit) => {
                    self.reserved = Some(permit);
                    self.wake_at = None;
                    return Poll::Ready(());
                }
                Err(open) => {
                    breaker.wake_on_transition(cx.waker());
                    // A transition between the refusal and the registration would be missed:
                    // look once more now that the waker is registered.
                    if let Ok(permit) = breaker.acquire_quietly() {
                        self.reserved = Some(permit);
                        self.wake_at = None;
                        return Poll::Ready(());
                    }
                    let Some(wait) = open.retry_after() else {
                        return Poll::Pending;
                    };
                    let deadline = Instant::now() + wait;
                    match &mut self.wake_at {
                        Some(sleep) => sleep.as_mut().reset(deadline),
                        None => self.wake_at = Some(Box::pin(sleep_until(deadline))),
                    }
                    let Some(sleep) = self.wake_at.as_mut() else {
                        return Poll::Pending;
                    };
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The open duration is over: round again, to probe.
                }
            }
        }
    }

    /// The admission reserved by the last ready poll.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<Permit> {
        self.reserved.take()
    }
}
