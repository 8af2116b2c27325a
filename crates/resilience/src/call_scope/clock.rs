//! One clock read per call, however many layers want to know when it started.
//!
//! A deadline, the retry policy that must not outlive it and the attempt timeout each start
//! counting when a request is called, and tower calls through a stack synchronously, outermost
//! first. Reading the clock costs tens of nanoseconds on a virtual machine, a good part of a
//! whole stack's overhead, so the outermost layer that needs the time reads it once and lends it
//! to the layers it calls: [`now`] inside [`during`] returns that instant. Calls made later, from
//! a future (a retry's next attempt), are outside any such call and read the clock themselves.

use std::cell::Cell;

use tokio::time::Instant;

thread_local! {
    static CALL_STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// When the call in progress on this thread started: the instant an enclosing layer read, or the
/// clock now.
#[inline]
pub(crate) fn now() -> Instant {
    CALL_STARTED.get().unwrap_or_else(Instant::now)
}

/// Runs `call` (a layer calling its inner service) with [`now`] answering `started`.
#[inline]
pub(crate) fn during<T>(started: Instant, call: impl FnOnce() -> T) -> T {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            CALL_STARTED.set(self.0);
        }
    }
    let _restore = Restore(CALL_STARTED.replace(Some(started)));
    call()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn inside_a_call_every_layer_reads_the_instant_it_started() {
        let started = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        let seen = during(started, || [now(), now()]);
        assert_eq!(seen, [started, started]);
    }

    #[tokio::test(start_paused = true)]
    async fn outside_a_call_the_clock_is_read() {
        let started = Instant::now();
        during(started, || ());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(now(), started + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_panics_lends_its_instant_no_longer() {
        let started = Instant::now();
        let panicked = std::panic::catch_unwind(|| during(started, || panic!("the call panicked")));
        assert!(panicked.is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_ne!(now(), started);
    }
}
