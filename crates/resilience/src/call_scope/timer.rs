//! One timer for nested limits: a [`Timeout`](crate::timeout::Timeout) polled inside a
//! [`Deadline`](crate::timeout::Deadline) asks the deadline's timer to wake the task instead of
//! registering a timer of its own.
//!
//! Registering a tokio timer takes the time driver's lock and writes the wheel, and so does
//! dropping it; with a deadline around the retries and a timeout around each attempt, every
//! request that waits would pay that twice. While a limit polls its inner future it opens a
//! scope on its thread; a limit polled inside (same thread, same waker, so the same task will be
//! woken) reports when it must be woken and returns. Only the outermost limit holds a timer,
//! set to the earliest instant any of them needs.
//!
//! A limit that deferred learns it is due from the scope too: when a timer fires, its limit polls
//! the inner future again with the instant the timer was set for, and every limit inside whose
//! expiry is not later fails. No limit reads the clock when polled.
//!
//! A limit polled with another waker (inside `FuturesUnordered`, say, which wakes each child on
//! its own) or on another task (behind `tower::buffer`) finds no scope of its own and arms its
//! own timer, as before: sharing is an optimisation that never decides whether a limit fires.

use std::cell::Cell;
use std::task::{RawWakerVTable, Waker};

use tokio::time::Instant;

thread_local! {
    /// The task of the limit polling its inner future on this thread right now; `None` outside
    /// any. Kept in three cells of plain values rather than one of a struct, so that each check
    /// reads only what it needs.
    static TASK: Cell<Option<TaskId>> = const { Cell::new(None) };
    /// The instant that limit knows has passed (its timer fired for it).
    static DUE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The earliest wake-up asked of that limit so far.
    static WAKE_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Which waker a scope's owner was polled with, compared as [`Waker::will_wake`] does.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TaskId {
    data: *const (),
    vtable: *const RawWakerVTable,
}

impl TaskId {
    #[inline]
    fn of(waker: &Waker) -> Self {
        Self {
            data: waker.data(),
            vtable: waker.vtable(),
        }
    }
}

/// Whether the limit polling this one right now was polled with `waker`.
#[inline]
fn enclosed_by_same_task(waker: &Waker) -> bool {
    TASK.get() == Some(TaskId::of(waker))
}

/// Puts the enclosing scope back, also when the inner poll panics.
struct Restore {
    task: Option<TaskId>,
    due: Option<Instant>,
    wake_at: Option<Instant>,
}

impl Drop for Restore {
    #[inline]
    fn drop(&mut self) {
        TASK.set(self.task);
        DUE.set(self.due);
        WAKE_AT.set(self.wake_at);
    }
}

/// What the limit enclosing this poll knows has passed: the instant its timer was set for, when
/// the timer has fired. None outside a scope of the same task, or when no timer fired.
#[inline]
pub(crate) fn due(waker: &Waker) -> Option<Instant> {
    if enclosed_by_same_task(waker) {
        DUE.get()
    } else {
        None
    }
}

/// Runs `poll` (a limit polling its inner future with `waker`) in a scope of its own, telling
/// the limits inside that `due` has passed, and returns its result with the earliest instant
/// they asked to be woken at.
#[inline]
pub(crate) fn within<T>(
    waker: &Waker,
    due: Option<Instant>,
    poll: impl FnOnce() -> T,
) -> (T, Option<Instant>) {
    let restore = Restore {
        task: TASK.replace(Some(TaskId::of(waker))),
        due: DUE.replace(due),
        wake_at: WAKE_AT.replace(None),
    };
    let result = poll();
    let asked = WAKE_AT.get();
    drop(restore);
    (result, asked)
}

/// Asks the limit polling this one to wake the task at `at`. False when no limit of the same
/// task encloses this poll: the caller needs a timer of its own.
#[inline]
pub(crate) fn defer_wake(waker: &Waker, at: Instant) -> bool {
    if !enclosed_by_same_task(waker) {
        return false;
    }
    WAKE_AT.set(Some(WAKE_AT.get().map_or(at, |earlier| earlier.min(at))));
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn outside_any_limit_there_is_no_one_to_defer_to() {
        let at = Instant::now();
        assert!(!defer_wake(Waker::noop(), at));
    }

    #[test]
    fn the_enclosing_limit_learns_the_earliest_wake_asked() {
        let now = Instant::now();
        let (deferred, asked) = within(Waker::noop(), None, || {
            [3, 1, 2]
                .map(|s| defer_wake(Waker::noop(), now + Duration::from_secs(s)))
                .to_vec()
        });
        assert_eq!(deferred, [true, true, true]);
        assert_eq!(asked, Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn a_limit_woken_by_another_waker_keeps_its_own_timer() {
        let other = Waker::from(Arc::new(Noop));
        let (deferred, asked) = within(Waker::noop(), None, || defer_wake(&other, Instant::now()));
        assert!(!deferred);
        assert_eq!(asked, None);
    }

    #[test]
    fn a_nested_scope_answers_for_its_own_limits_and_then_ends() {
        let now = Instant::now();
        let (inner_asked, outer_asked) = within(Waker::noop(), None, || {
            let (_, asked) = within(Waker::noop(), None, || defer_wake(Waker::noop(), now));
            asked
        });
        assert_eq!(inner_asked, Some(now), "the innermost limit heard it");
        assert_eq!(
            outer_asked, None,
            "the outer one hears only what the inner one passes on"
        );
        assert!(!defer_wake(Waker::noop(), now), "no scope is left open");
    }

    #[test]
    fn limits_inside_hear_what_has_passed_and_only_from_their_own_task() {
        let fired = Instant::now();
        let other = Waker::from(Arc::new(Noop));
        let (seen, _) = within(Waker::noop(), Some(fired), || {
            [due(Waker::noop()), due(&other)]
        });
        assert_eq!(seen, [Some(fired), None]);
        assert_eq!(due(Waker::noop()), None, "not after the scope ends");
    }

    #[test]
    fn a_panicking_poll_closes_its_scope() {
        let panicked = std::panic::catch_unwind(|| {
            within(Waker::noop(), None, || panic!("the inner future panicked"));
        });
        assert!(panicked.is_err());
        assert!(!defer_wake(Waker::noop(), Instant::now()));
    }
}
