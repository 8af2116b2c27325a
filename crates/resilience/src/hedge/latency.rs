//! Observed latency, and the hedge delay it gives: pure types, tested without a runtime.
//!
//! Latencies go into log-linear buckets (four per power of two of microseconds, so a bucket's
//! bounds are within 19 % of each other), counted in per-thread stripes so recording is one
//! uncontended atomic add. Time is cut into windows; when a window ends, the delay for the next
//! one is the chosen percentile of the window that ended, clamped to a floor and a ceiling, or
//! no hedging at all when the window saw too few calls to say what slow is.

use std::time::Duration;

use crate::striped::StripedCounters;

/// Buckets per power of two.
const SUB_BUCKETS: u32 = 4;
/// Enough buckets for latencies up to 2³² µs (over an hour); longer ones share the last.
pub(crate) const BUCKETS: usize = (32 * SUB_BUCKETS) as usize;

/// The bucket of a latency.
pub(crate) fn bucket_of(latency: Duration) -> usize {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let power = 63 - micros.leading_zeros();
    // The two bits below the leading one pick the sub-bucket.
    let sub = if power >= 2 {
        (micros >> (power - 2)) & 0b11
    } else {
        (micros << (2 - power)) & 0b11
    };
    usize::try_from(power * SUB_BUCKETS + sub as u32)
        .unwrap_or(BUCKETS - 1)
        .min(BUCKETS - 1)
}

/// The largest latency in `bucket` (its upper bound, so a percentile never understates).
pub(crate) fn bucket_upper(bucket: usize) -> Duration {
    let bucket = bucket as u64;
    let power = bucket / u64::from(SUB_BUCKETS);
    let sub = bucket % u64::from(SUB_BUCKETS);
    let low = (1u64 << power) + (sub << power) / u64::from(SUB_BUCKETS);
    let width = ((1u64 << power) / u64::from(SUB_BUCKETS)).max(1);
    Duration::from_micros(low + width - 1)
}

/// The latency at or under which `percentile` (0–1) of the counted calls finished.
pub(crate) fn percentile(counts: &[u64; BUCKETS], percentile: f64) -> Option<Duration> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64 * percentile).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (bucket, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(bucket_upper(bucket));
        }
    }
    Some(bucket_upper(BUCKETS - 1))
}

/// When to hedge, given what the last window saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DelayRule {
    pub(crate) percentile: f64,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) min_samples: u64,
}

impl DelayRule {
    /// The hedge delay for the next window, or `None` (do not hedge) when `counts` holds fewer
    /// than the minimum number of calls.
    pub(crate) fn delay(&self, counts: &[u64; BUCKETS]) -> Option<Duration> {
        let total: u64 = counts.iter().sum();
        if total < self.min_samples {
            return None;
        }
        percentile(counts, self.percentile).map(|at| at.clamp(self.min_delay, self.max_delay))
    }
}

/// The latencies of one period, striped per thread: the hedge records one on every call from
/// every thread, so it counts on per-thread cache lines and reads them back once a period. Not
/// a sliding window: the hedge keeps two and swaps them as periods end (`hedge/mod.rs`); the
/// crate's sliding windows are in `window.rs`.
pub(crate) struct PeriodHistogram(StripedCounters<BUCKETS>);

impl PeriodHistogram {
    pub(crate) fn new() -> Self {
        Self(StripedCounters::new())
    }

    pub(crate) fn record(&self, latency: Duration) {
        self.0.increment(bucket_of(latency));
    }

    /// The counts summed over the stripes.
    pub(crate) fn counts(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|bucket| self.0.sum(bucket))
    }

    pub(crate) fn clear(&self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn buckets_bound_their_latencies_within_a_fifth() {
        for micros in [
            1, 2, 3, 5, 7, 100, 999, 1_000, 1_500, 12_345, 1_000_000, 59_000_000,
        ] {
            let latency = Duration::from_micros(micros);
            let bucket = bucket_of(latency);
            let upper = bucket_upper(bucket);
            assert!(
                upper >= latency,
                "{latency:?} above its bucket's bound {upper:?}"
            );
            assert!(
                upper.as_secs_f64() <= latency.as_secs_f64() * 1.25 + 1e-6,
                "{latency:?} -> {upper:?}"
            );
            if bucket > 0 {
                assert!(
                    bucket_upper(bucket - 1) < latency,
                    "{latency:?} in too high a bucket"
                );
            }
        }
    }

    #[test]
    fn buckets_grow_with_latency() {
        let mut previous = 0;
        for micros in (1..100_000).step_by(37) {
            let bucket = bucket_of(Duration::from_micros(micros));
            assert!(bucket >= previous);
            previous = bucket;
        }
        assert_eq!(bucket_of(Duration::from_secs(100_000)), BUCKETS - 1);
    }

    fn counts_of(latencies: &[(Duration, u64)]) -> [u64; BUCKETS] {
        let mut counts = [0; BUCKETS];
        for (latency, n) in latencies {
            counts[bucket_of(*latency)] += n;
        }
        counts
    }

    #[test]
    fn the_percentile_is_the_bucket_bound_that_covers_it() {
        let counts = counts_of(&[(ms(1), 90), (ms(8), 9), (ms(200), 1)]);
        assert_eq!(
            percentile(&counts, 0.5),
            Some(bucket_upper(bucket_of(ms(1))))
        );
        assert_eq!(
            percentile(&counts, 0.9),
            Some(bucket_upper(bucket_of(ms(1))))
        );
        assert_eq!(
            percentile(&counts, 0.95),
            Some(bucket_upper(bucket_of(ms(8))))
        );
        assert_eq!(
            percentile(&counts, 1.0),
            Some(bucket_upper(bucket_of(ms(200))))
        );
        assert_eq!(percentile(&[0; BUCKETS], 0.9), None);
    }

    #[test]
    fn the_delay_is_clamped_and_needs_enough_calls() {
        let rule = DelayRule {
            percentile: 0.95,
            min_delay: ms(5),
            max_delay: ms(100),
            min_samples: 20,
        };
        let fast = counts_of(&[(Duration::from_micros(300), 100)]);
        assert_eq!(rule.delay(&fast), Some(ms(5)), "the floor");
        let slow = counts_of(&[(Duration::from_secs(2), 100)]);
        assert_eq!(rule.delay(&slow), Some(ms(100)), "the ceiling");
        let middling = counts_of(&[(ms(2), 90), (ms(30), 10)]);
        assert_eq!(rule.delay(&middling), Some(bucket_upper(bucket_of(ms(30)))));
        let sparse = counts_of(&[(ms(30), 19)]);
        assert_eq!(rule.delay(&sparse), None, "too few calls to judge");
    }

    #[test]
    fn a_window_sums_its_stripes_and_clears() {
        let window = PeriodHistogram::new();
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..10 {
                        window.record(ms(3));
                    }
                });
            }
        });
        assert_eq!(window.counts()[bucket_of(ms(3))], 30);
        window.clear();
        assert_eq!(window.counts().iter().sum::<u64>(), 0);
    }
}
