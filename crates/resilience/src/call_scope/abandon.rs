//! How a hedge tells the breaker of the attempt it gave up on that the attempt lost.
//!
//! When a hedged copy answers first, the original attempt is dropped. To its breaker a dropped
//! call looks like any cancellation (a client that went away), which says nothing about the
//! endpoint, so it would count neither way. But an original that lost to a copy sent a hedge
//! delay later was slower than a whole second exchange plus that delay: on a hung endpoint every
//! call ends this way, and unless the breaker counts those as failures it never opens, and every
//! call to the endpoint pays the hedge delay (and the budget) for as long as it hangs.
//!
//! Dropping is synchronous, so the hedge marks the thread while it drops the loser, and the
//! breaker's permit, dropped inside, reads the mark. No allocation and nothing on any call that
//! is not abandoned. A layer between the hedge and the breaker that moves the call to another
//! task (a `Buffer`) hides the mark: the call then counts as a plain cancellation.

use std::cell::Cell;

thread_local! {
    static ABANDONING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `drop_loser` with the thread marked: every breaker permit dropped inside records a
/// failure.
pub(crate) fn abandon<R>(drop_loser: impl FnOnce() -> R) -> R {
    struct Unmark(bool);
    impl Drop for Unmark {
        fn drop(&mut self) {
            ABANDONING.with(|flag| flag.set(self.0));
        }
    }
    let _unmark = Unmark(ABANDONING.with(|flag| flag.replace(true)));
    drop_loser()
}

/// Whether the current thread is dropping an abandoned attempt.
pub(crate) fn abandoning() -> bool {
    ABANDONING.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_lasts_only_while_the_loser_is_dropped() {
        assert!(!abandoning());
        assert!(abandon(abandoning));
        assert!(abandon(|| abandon(abandoning)));
        assert!(!abandoning());
    }
}
