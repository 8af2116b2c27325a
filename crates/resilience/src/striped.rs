//! Counters that several threads bump without fighting over one cache line.
//!
//! A retry budget counts every request it sees. One shared `AtomicU64` would make every core
//! write the same cache line on every request, which is exactly the contention a healthy client
//! must not pay for. Each thread instead adds to its own padded stripe, and readers (a budget
//! deciding on a retry) sum the stripes: writes are cheap and frequent, reads are rare and do the
//! work. The breaker's per-thread lanes use the same thread slots.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter set; a power of two so the thread index is a mask.
pub(crate) const STRIPES: usize = 8;

/// One stripe, alone on its cache lines (128 bytes covers adjacent-line prefetching).
#[repr(align(128))]
struct Stripe<const N: usize>([AtomicU64; N]);

/// `N` counters, each split into per-thread stripes.
pub(crate) struct StripedCounters<const N: usize> {
    stripes: Box<[Stripe<N>; STRIPES]>,
}

impl<const N: usize> StripedCounters<N> {
    pub(crate) fn new() -> Self {
        Self {
            stripes: Box::new(std::array::from_fn(|_| {
                Stripe(std::array::from_fn(|_| AtomicU64::new(0)))
            })),
        }
    }

    /// Adds one to counter `field`.
    #[inline]
    pub(crate) fn increment(&self, field: usize) {
        self.stripes[stripe_index()].0[field].fetch_add(1, Ordering::Relaxed);
    }

    /// The sum of counter `field` over every stripe.
    pub(crate) fn sum(&self, field: usize) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| stripe.0[field].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Sets every counter back to zero (a count that races the clearing may be lost).
    pub(crate) fn clear(&self) {
        for stripe in self.stripes.iter() {
            for counter in &stripe.0 {
                counter.store(0, Ordering::Relaxed);
            }
        }
    }
}

impl<const N: usize> std::fmt::Debug for StripedCounters<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..N).map(|field| self.sum(field)))
            .finish()
    }
}

/// One value per thread stripe, each made on first use by a thread of that stripe: copies of a
/// shared value (a balancer's endpoints, a client's stack) whose clones then count on their own
/// thread's cache lines.
pub(crate) struct PerStripe<T> {
    slots: [OnceLock<T>; STRIPES],
}

impl<T> PerStripe<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// This thread's value, made by `make` if this stripe has none yet.
    #[inline]
    pub(crate) fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        self.slots[stripe_index()].get_or_init(make)
    }
}

/// This thread's stripe: threads are numbered in the order they first count, so two threads
/// always land on different stripes until there are more threads than stripes.
#[inline(always)]
pub(crate) fn stripe_index() -> usize {
    let index = STRIPE.get();
    if index == usize::MAX {
        return number_this_thread();
    }
    index
}

/// Whether `stripe` is this thread's: one thread-local load, and no numbering of a thread that
/// has none yet (it is not that stripe's, whatever number it will get).
#[inline(always)]
pub(crate) fn is_this_threads(stripe: usize) -> bool {
    STRIPE.get() == stripe
}

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A thread's first count, kept out of line so that every later one is a thread-local load.
#[cold]
#[inline(never)]
fn number_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let index = NEXT.fetch_add(1, Ordering::Relaxed) & (STRIPES - 1);
    STRIPE.set(index);
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_increments_from_many_threads() {
        let counters = std::sync::Arc::new(StripedCounters::<2>::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counters = counters.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counters.increment(1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counters.sum(0), 0);
        assert_eq!(counters.sum(1), 4000);
    }
}
