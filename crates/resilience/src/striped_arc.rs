//! A shared reference whose clones write per-thread reference counts.
//!
//! Tower clones services per request: a server clones its stack for every request, tower's
//! `Retry` clones the service below it into every response future, and a balancer clones the
//! endpoint it picked. With an `Arc` inside, every one of those clones and drops writes one
//! shared count, and two cores serving requests pass that cache line back and forth on every
//! call, which is what stopped a shared stack from scaling past one thread.
//!
//! A [`StripedArc`] points at one of a few branches, one per thread stripe (the threads of
//! [`striped`](crate::striped)), each an `Arc` of its own holding the shared root. A clone made
//! on the thread of its branch writes only that branch's count; a clone made on another thread
//! moves to that thread's branch (taking it from the root's slot, or making it when none is
//! alive), so a handle that travels to a worker thread costs one lookup and is cheap from then
//! on. The root holds its branches weakly: when every clone of a stripe is gone, so is its
//! branch, and when every branch is gone, so is the value.
//!
//! [`Lanes`] keeps one clone on every stripe alive, for a value reached through `&self` from
//! any thread (a breaker's state, from whichever worker runs the call): each call clones the
//! lane of its own thread, with no lookup and a count no other thread writes, even when the task
//! that holds the service has moved to another worker. This is the crate's one per-thread
//! reference count; the per-thread counters it indexes by are [`striped`](crate::striped)'s.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};

use crate::striped::{STRIPES, is_this_threads, stripe_index};

/// A reference-counted `T` whose clones count per thread; see the [module docs](self).
pub(crate) struct StripedArc<T> {
    branch: Arc<Branch<T>>,
}

/// Alone on its cache lines (128 bytes covers adjacent-line prefetching): a thread's
/// reference count must not share a line with another thread's, and [`Lanes`] allocates all
/// its branches at once, side by side.
#[repr(align(128))]
struct Branch<T> {
    root: Arc<Root<T>>,
    stripe: usize,
}

struct Root<T> {
    value: T,
    branches: [Mutex<Weak<Branch<T>>>; STRIPES],
}

impl<T> StripedArc<T> {
    pub(crate) fn new(value: T) -> Self {
        let root = Arc::new(Root {
            value,
            branches: std::array::from_fn(|_| Mutex::new(Weak::new())),
        });
        Self::on_stripe(&root, stripe_index())
    }

    /// Whether both point at the same value.
    #[cfg(any(test, feature = "admin"))]
    pub(crate) fn ptr_eq(this: &Self, other: &Self) -> bool {
        Arc::ptr_eq(&this.branch.root, &other.branch.root)
    }

    /// Kept out of line: a clone on its own branch's thread, the common case, stays a compare and
    /// an increment that inlines into the callers' `clone`.
    ///
    /// `extern "C"` tells the compiler that this call cannot unwind (a panic escaping it would
    /// abort, and nothing in it panics: the slot's lock ignores poisoning and allocation failure
    /// aborts anyway). A call that may unwind makes every `clone` that inlines this one carry a
    /// clean-up path for the fields cloned before it, which made tower's derived
    /// `Retry::clone` too big to inline; the retry future was then assembled from an
    /// out-of-line copy, whose reads stalled on the copy's fresh writes: 30 ns more per call in
    /// the micro bench's full stack. The value only passes between Rust functions, so the lint
    /// about C-compatible types does not apply.
    #[cold]
    #[inline(never)]
    #[allow(improper_ctypes_definitions)]
    extern "C" fn on_this_threads_stripe(root: &Arc<Root<T>>) -> Self {
        Self::on_stripe(root, stripe_index())
    }

    fn on_stripe(root: &Arc<Root<T>>, stripe: usize) -> Self {
        // The slot only ever holds a weak reference, so a panic while it is held leaves it whole.
        let mut slot = root.branches[stripe]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let branch = slot.upgrade().unwrap_or_else(|| {
            let branch = Arc::new(Branch {
                root: Arc::clone(root),
                stripe,
            });
            *slot = Arc::downgrade(&branch);
            branch
        });
        Self { branch }
    }
}

/// One [`StripedArc`] per thread stripe, all alive as long as this is; see the [module docs](self).
pub(crate) struct Lanes<T> {
    lanes: [StripedArc<T>; STRIPES],
}

impl<T> Lanes<T> {
    /// Lanes over the value `make` returns, given a weak reference to that value (for a task it
    /// spawns that must not keep it alive).
    pub(crate) fn new_cyclic(make: impl FnOnce(WeakStriped<T>) -> T) -> Self {
        let root = Arc::new_cyclic(|root| Root {
            value: make(WeakStriped {
                root: Weak::clone(root),
            }),
            branches: std::array::from_fn(|_| Mutex::new(Weak::new())),
        });
        Self {
            lanes: std::array::from_fn(|stripe| StripedArc::on_stripe(&root, stripe)),
        }
    }

    /// A new reference on this thread's lane: one increment of a count only this thread's
    /// stripe writes.
    #[inline(always)]
    pub(crate) fn clone_this_threads(&self) -> StripedArc<T> {
        StripedArc {
            branch: Arc::clone(&self.lanes[stripe_index()].branch),
        }
    }
}

impl<T> Deref for Lanes<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        &self.lanes[0]
    }
}

/// A reference to a [`StripedArc`]'s value that does not keep it alive.
pub(crate) struct WeakStriped<T> {
    root: Weak<Root<T>>,
}

impl<T> WeakStriped<T> {
    /// A strong reference on this thread's stripe, while the value lives.
    pub(crate) fn upgrade(&self) -> Option<StripedArc<T>> {
        let root = self.root.upgrade()?;
        Some(StripedArc::on_stripe(&root, stripe_index()))
    }
}

impl<T> Clone for WeakStriped<T> {
    fn clone(&self) -> Self {
        Self {
            root: Weak::clone(&self.root),
        }
    }
}

impl<T> Clone for StripedArc<T> {
    #[inline(always)]
    fn clone(&self) -> Self {
        if is_this_threads(self.branch.stripe) {
            Self {
                branch: Arc::clone(&self.branch),
            }
        } else {
            Self::on_this_threads_stripe(&self.branch.root)
        }
    }
}

impl<T> Deref for StripedArc<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        &self.branch.root.value
    }
}

impl<T: fmt::Debug> fmt::Debug for StripedArc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.deref().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts its drops, to see when the shared value goes.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_clone_on_the_same_thread_shares_the_branch() {
        let first = StripedArc::new(7);
        let second = first.clone();
        assert!(Arc::ptr_eq(&first.branch, &second.branch));
        assert_eq!(Arc::strong_count(&first.branch), 2);
        assert_eq!(*second, 7);
    }

    /// A stripe other than this thread's, so the tests do not depend on how threads were
    /// numbered.
    fn other_stripe() -> usize {
        (stripe_index() + 1) % STRIPES
    }

    #[test]
    fn a_clone_on_another_thread_takes_that_threads_branch_and_shares_the_value() {
        let here = StripedArc::new(7);
        let (there, stripe) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let there = here.clone();
                    // A second clone there finds the branch the first one took.
                    let again = there.clone();
                    assert!(Arc::ptr_eq(&there.branch, &again.branch));
                    (there, stripe_index())
                })
                .join()
                .unwrap()
        });
        assert_eq!(there.branch.stripe, stripe);
        assert!(StripedArc::ptr_eq(&here, &there));
        assert_eq!(*there, 7);
    }

    #[test]
    fn the_value_lives_until_the_last_clone_of_any_stripe_is_dropped() {
        let drops = Arc::new(AtomicUsize::new(0));
        let here = StripedArc::new(Tracked(Arc::clone(&drops)));
        let there = StripedArc::on_stripe(&here.branch.root, other_stripe());
        assert!(!Arc::ptr_eq(&here.branch, &there.branch));
        drop(here);
        assert_eq!(drops.load(Ordering::SeqCst), 0, "a clone is still alive");
        let root = Arc::downgrade(&there.branch.root);
        drop(there);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(root.upgrade().is_none(), "no branch keeps the root alive");
    }

    #[test]
    fn lanes_clone_this_threads_branch_and_a_weak_reference_does_not_keep_the_value() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut weak = None;
        let lanes = Lanes::new_cyclic(|me| {
            weak = Some(me);
            Tracked(Arc::clone(&drops))
        });
        let weak = weak.unwrap();
        let here = lanes.clone_this_threads();
        assert!(Arc::ptr_eq(
            &here.branch,
            &lanes.lanes[stripe_index()].branch
        ));
        assert_eq!(here.branch.stripe, stripe_index());
        let upgraded = weak.upgrade().unwrap();
        assert!(StripedArc::ptr_eq(&upgraded, &here));
        drop((lanes, here, upgraded));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the lanes were the last owners"
        );
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn a_stripe_whose_clones_are_all_gone_gets_a_new_branch() {
        let here = StripedArc::new(7);
        let stripe = other_stripe();
        let first = StripedArc::on_stripe(&here.branch.root, stripe);
        let same = StripedArc::on_stripe(&here.branch.root, stripe);
        assert!(
            Arc::ptr_eq(&first.branch, &same.branch),
            "a live branch is reused"
        );
        drop((first, same));
        let slot = here.branch.root.branches[stripe].lock().unwrap().upgrade();
        assert!(slot.is_none(), "the dead branch is not kept");
        let second = StripedArc::on_stripe(&here.branch.root, stripe);
        assert_eq!(second.branch.stripe, stripe);
        assert!(StripedArc::ptr_eq(&here, &second));
        assert_eq!(*second, 7);
    }
}
