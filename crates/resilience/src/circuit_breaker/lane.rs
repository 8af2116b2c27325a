//! The per-thread lanes a breaker's permits hold.
//!
//! A call's permit must own a reference to the breaker (tower futures are `'static`). One shared
//! `Arc` would make every core write its reference count on every call; instead each breaker has
//! one padded lane per thread stripe (the threads of [`striped`](crate::striped)), each an `Arc`
//! of its own pointing at the shared core, and a call clones the lane of its thread. The lane
//! also holds that thread's counts of outcomes, so a call writes only lines its thread owns.

use std::sync::Arc;

use super::state::Core;
use crate::sync::{AtomicU64, Ordering};

/// Which of a lane's counters: successes, failures, slow calls, refused calls.
pub(super) const SUCCESSES: usize = 0;
pub(super) const FAILURES: usize = 1;
pub(super) const SLOW: usize = 2;
pub(super) const REJECTED: usize = 3;
/// How many counters a lane has.
pub(super) const COUNTERS: usize = 4;

/// What one thread's calls share: a reference to the core and their counters, alone on their
/// cache lines.
#[repr(align(128))]
pub(super) struct Lane {
    pub(super) core: Arc<Core>,
    counters: [AtomicU64; COUNTERS],
}

impl Lane {
    pub(super) fn new(core: Arc<Core>) -> Self {
        Self {
            core,
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    #[inline]
    pub(super) fn count(&self, field: usize) {
        self.counters[field].fetch_add(1, Ordering::Relaxed);
    }

    /// Counter `field` of this lane.
    pub(super) fn read(&self, field: usize) -> u64 {
        self.counters[field].load(Ordering::Relaxed)
    }
}
