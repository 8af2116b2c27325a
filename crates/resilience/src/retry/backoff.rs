//! The wait before a retry, as the future tower's `Retry` awaits.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

pin_project! {
    /// Resolves when a retry may be sent: at once for a request that was never sent, after the
    /// backoff (or the server's `Retry-After`) otherwise. Waiting no time arms no timer.
    #[derive(Debug)]
    pub struct Backoff {
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl Backoff {
    pub(crate) fn none() -> Self {
        Self { sleep: None }
    }

    pub(crate) fn sleep(delay: Duration) -> Self {
        Self {
            sleep: Some(tokio::time::sleep(delay)),
        }
    }
}

impl Future for Backoff {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project().sleep.as_pin_mut() {
            Some(sleep) => sleep.poll(cx),
            None => Poll::Ready(()),
        }
    }
}
