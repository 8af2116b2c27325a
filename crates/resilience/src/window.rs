//! Sliding windows of call outcomes, recorded without locks: the one window of the crate, read
//! by the breaker's trip conditions and by the load-aware balancer's outlier detection.
//!
//! Each recorded sample carries the generation it belongs to. A breaker's state change starts a
//! new generation, so "clearing" a window is free and can never race with a concurrent record:
//! samples of an older generation are simply not counted. A user that never clears (the
//! balancer) records everything in generation 0.
//!
//! The count window is exact. The time window is statistical: when a bucket rolls over while
//! another thread records into it, that one sample may be lost. A breaker needs a rate, not an
//! audit, and the alternative is a lock on every call.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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

/// The calls of the last `span`, in [`BUCKETS`] buckets of `span / BUCKETS` each.
pub(crate) struct TimeWindow {
    bucket_nanos: u64,
    buckets: Box<[Bucket]>,
}

#[derive(Default)]
struct Bucket {
    /// `generation << 40 | bucket number`, so a bucket knows which stretch of time it counts.
    stamp: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

const BUCKET_NUMBER_BITS: u32 = 40;

impl TimeWindow {
    fn new(span: Duration) -> Self {
        let bucket_nanos = u64::try_from(span.as_nanos() / u128::from(BUCKETS))
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            bucket_nanos,
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
        }
    }

    fn stamp(generation: u32, number: u64) -> u64 {
        (u64::from(generation) << BUCKET_NUMBER_BITS) | (number & ((1 << BUCKET_NUMBER_BITS) - 1))
    }

    fn record(&self, generation: u32, now_nanos: u64, sample: Sample) {
        let number = now_nanos / self.bucket_nanos;
        let bucket = &self.buckets[(number % BUCKETS) as usize];
        let stamp = Self::stamp(generation, number);
        let seen = bucket.stamp.load(Ordering::Acquire);
        if seen != stamp
            && bucket
                .stamp
                .compare_exchange(seen, stamp, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // This thread rolled the bucket over to the current stretch of time: empty it.
            bucket.calls.store(0, Ordering::Relaxed);
            bucket.failures.store(0, Ordering::Relaxed);
            bucket.slow.store(0, Ordering::Relaxed);
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        if sample.failure {
            bucket.failures.fetch_add(1, Ordering::Relaxed);
        }
        if sample.slow {
            bucket.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counts(&self, generation: u32, now_nanos: u64) -> WindowCounts {
        let current = now_nanos / self.bucket_nanos;
        let oldest = current.saturating_sub(BUCKETS - 1);
        let mut counts = WindowCounts::default();
        for number in oldest..=current {
            let bucket = &self.buckets[(number % BUCKETS) as usize];
            if bucket.stamp.load(Ordering::Acquire) != Self::stamp(generation, number) {
                continue;
            }
            counts.calls += bucket.calls.load(Ordering::Relaxed);
            counts.failures += bucket.failures.load(Ordering::Relaxed);
            counts.slow += bucket.slow.load(Ordering::Relaxed);
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
