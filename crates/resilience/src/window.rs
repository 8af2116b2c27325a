//! Sliding windows recorded without locks: the crate's one implementation of them. Outcome
//! windows ([`Window`]: the last `n` calls, or the calls of the last `d`) are read by the
//! breaker's trip conditions and the load-aware balancer's outlier detection; the time-slotted
//! ring under the time window ([`SlotRing`]) also holds the dashboard's latency histogram
//! (`admin/latency.rs`).
//!
//! Each recorded sample carries the generation it belongs to. A breaker's state change starts a
//! new generation, so "clearing" a window is free and can never race with a concurrent record:
//! samples of an older generation are simply not counted. A user that never clears (the
//! balancer) records everything in generation 0.
//!
//! The count window is exact. The time window is statistical: when a bucket rolls over while
//! another thread records into it, that one sample may be lost. A breaker needs a rate, not an
//! audit, and the alternative is a lock on every call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The sliding window over which failure and slow-call rates are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `d`, in ten buckets (the window slides a tenth at a time).
    Time(Duration),
}

/// What a window holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WindowCounts {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

/// The outcome of one call, as the window sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) failure: bool,
    pub(crate) slow: bool,
}

pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count(n) => Self::Count(CountWindow::new(n)),
            SlidingWindow::Time(span) => Self::Time(TimeWindow::new(span)),
        }
    }

    pub(crate) fn record(&self, generation: u32, now_nanos: u64, sample: Sample) {
        match self {
            Self::Count(window) => window.record(generation, sample),
            Self::Time(window) => window.record(generation, now_nanos, sample),
        }
    }

    pub(crate) fn counts(&self, generation: u32, now_nanos: u64) -> WindowCounts {
        match self {
            Self::Count(window) => window.counts(generation),
            Self::Time(window) => window.counts(generation, now_nanos),
        }
    }
}

/// The last `n` calls: a ring of slots, each holding `generation << 2 | slow << 1 | failure`,
/// tagged so an empty or stale slot never counts.
pub(crate) struct CountWindow {
    next: AtomicU64,
    slots: Box<[AtomicU64]>,
}

const FAILURE: u64 = 0b01;
const SLOW: u64 = 0b10;
const FILLED: u64 = 0b100;

impl CountWindow {
    fn new(size: u32) -> Self {
        Self {
            next: AtomicU64::new(0),
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self, generation: u32, sample: Sample) {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let value = (u64::from(generation) << 3)
            | FILLED
            | if sample.slow { SLOW } else { 0 }
            | if sample.failure { FAILURE } else { 0 };
        self.slots[index as usize].store(value, Ordering::Relaxed);
    }

    fn counts(&self, generation: u32) -> WindowCounts {
        let mut counts = WindowCounts::default();
        for slot in self.slots.iter() {
            let value = slot.load(Ordering::Relaxed);
            if value & FILLED == 0 || (value >> 3) as u32 != generation {
                continue;
            }
            counts.calls += 1;
            counts.failures += u32::from(value & FAILURE != 0);
            counts.slow += u32::from(value & SLOW != 0);
        }
        counts
    }
}

const BUCKETS: u64 = 10;

/// The calls of the last `span`, in [`BUCKETS`] slots of `span / BUCKETS` each.
pub(crate) struct TimeWindow {
    bucket_nanos: u64,
    ring: SlotRing<3>,
}

/// The counters of one slot of a [`TimeWindow`].
const CALLS: usize = 0;
const FAILURES: usize = 1;
const SLOW_CALLS: usize = 2;

impl TimeWindow {
    fn new(span: Duration) -> Self {
        let bucket_nanos = u64::try_from(span.as_nanos() / u128::from(BUCKETS))
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            bucket_nanos,
            ring: SlotRing::new(BUCKETS as usize),
        }
    }

    fn record(&self, generation: u32, now_nanos: u64, sample: Sample) {
        self.ring
            .record(generation, now_nanos / self.bucket_nanos, |counts| {
                counts[CALLS].fetch_add(1, Ordering::Relaxed);
                if sample.failure {
                    counts[FAILURES].fetch_add(1, Ordering::Relaxed);
                }
                if sample.slow {
                    counts[SLOW_CALLS].fetch_add(1, Ordering::Relaxed);
                }
            });
    }

    fn counts(&self, generation: u32, now_nanos: u64) -> WindowCounts {
        let counts = self.ring.sum(generation, now_nanos / self.bucket_nanos);
        let count = |field: usize| u32::try_from(counts[field]).unwrap_or(u32::MAX);
        WindowCounts {
            calls: count(CALLS),
            failures: count(FAILURES),
            slow: count(SLOW_CALLS),
        }
    }
}

/// A ring of time slots, each holding `N` counters for one stretch of time (its number, e.g.
/// the second since an epoch) in one generation.
///
/// The first record of a new stretch claims the slot that stretch maps to with one
/// compare-and-swap of the slot's stamp, and empties it. A record that races the claim may be
/// lost, and one that arrives after a later stretch has taken its slot is dropped: a rate or a
/// percentile can afford that, a hot path cannot afford a lock.
pub(crate) struct SlotRing<const N: usize> {
    slots: Box<[Slot<N>]>,
}

struct Slot<const N: usize> {
    /// `generation << 40 | (stretch + 1)`; 0 while the slot has counted nothing.
    stamp: AtomicU64,
    counts: [AtomicU64; N],
}

const STRETCH_BITS: u32 = 40;
const STRETCH_MASK: u64 = (1 << STRETCH_BITS) - 1;

impl<const N: usize> SlotRing<N> {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots.max(1))
                .map(|_| Slot {
                    stamp: AtomicU64::new(0),
                    counts: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
        }
    }

    fn stamp(generation: u32, stretch: u64) -> u64 {
        (u64::from(generation) << STRETCH_BITS) | (stretch.wrapping_add(1) & STRETCH_MASK)
    }

    fn slot(&self, stretch: u64) -> &Slot<N> {
        &self.slots[(stretch % self.slots.len() as u64) as usize]
    }

    /// Counts into the slot of `stretch` in `generation`: `add` bumps the counters it means.
    pub(crate) fn record(&self, generation: u32, stretch: u64, add: impl FnOnce(&[AtomicU64; N])) {
        let slot = self.slot(stretch);
        let stamp = Self::stamp(generation, stretch);
        let seen = slot.stamp.load(Ordering::Acquire);
        if seen != stamp {
            if seen > stamp {
                // A later stretch (or generation) has the slot already.
                return;
            }
            if slot
                .stamp
                .compare_exchange(seen, stamp, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                for count in &slot.counts {
                    count.store(0, Ordering::Relaxed);
                }
            }
        }
        add(&slot.counts);
    }

    /// The counters summed over the stretches of `generation` the ring covers up to `newest`.
    pub(crate) fn sum(&self, generation: u32, newest: u64) -> [u64; N] {
        let oldest = newest.saturating_sub(self.slots.len() as u64 - 1);
        let mut sums = [0; N];
        for stretch in oldest..=newest {
            let slot = self.slot(stretch);
            if slot.stamp.load(Ordering::Acquire) != Self::stamp(generation, stretch) {
                continue;
            }
            for (sum, count) in sums.iter_mut().zip(&slot.counts) {
                *sum += count.load(Ordering::Relaxed);
            }
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(counts: &[AtomicU64; 1]) {
        counts[0].fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    fn a_slot_ring_counts_per_stretch_and_drops_a_record_whose_slot_moved_on() {
        let ring = SlotRing::<1>::new(3);
        ring.record(0, 0, one);
        ring.record(0, 1, one);
        ring.record(0, 1, one);
        assert_eq!(ring.sum(0, 1), [3]);
        ring.record(0, 3, one);
        assert_eq!(
            ring.sum(0, 3),
            [3],
            "stretch 3 took stretch 0's slot: 2 + 1"
        );
        ring.record(0, 0, one);
        assert_eq!(ring.sum(0, 3), [3], "a record for stretch 0 came too late");
        assert_eq!(ring.sum(1, 3), [0], "another generation sees none of these");
    }

    const OK: Sample = Sample {
        failure: false,
        slow: false,
    };
    const FAIL: Sample = Sample {
        failure: true,
        slow: false,
    };
    const SLOW_OK: Sample = Sample {
        failure: false,
        slow: true,
    };

    #[test]
    fn count_window_keeps_only_the_last_n_calls() {
        let window = CountWindow::new(4);
        for sample in [FAIL, FAIL, OK, SLOW_OK, OK, OK] {
            window.record(1, sample);
        }
        assert_eq!(
            window.counts(1),
            WindowCounts {
                calls: 4,
                failures: 0,
                slow: 1
            }
        );
    }

    #[test]
    fn a_new_generation_starts_empty() {
        let window = CountWindow::new(4);
        window.record(1, FAIL);
        window.record(1, FAIL);
        assert_eq!(window.counts(2), WindowCounts::default());
        window.record(2, OK);
        assert_eq!(
            window.counts(2),
            WindowCounts {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn time_window_forgets_calls_older_than_its_span() {
        let second = 1_000_000_000;
        let window = TimeWindow::new(Duration::from_secs(10));
        window.record(0, 0, FAIL);
        window.record(0, 5 * second, FAIL);
        window.record(0, 9 * second, OK);
        assert_eq!(
            window.counts(0, 9 * second),
            WindowCounts {
                calls: 3,
                failures: 2,
                slow: 0
            }
        );
        // At 12 s the bucket of second 0 and second 1 have slid out.
        window.record(0, 12 * second, SLOW_OK);
        assert_eq!(
            window.counts(0, 12 * second),
            WindowCounts {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        assert_eq!(window.counts(0, 30 * second), WindowCounts::default());
    }
}
