//! Latency histograms and the numbers a run reports from them.
//!
//! Latencies are recorded in microseconds in an HdrHistogram (3 significant digits, 1 µs to
//! 60 s), so p99.9 over millions of requests costs a fixed few kilobytes and merging the
//! workers' histograms is exact.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The highest latency a histogram records; longer ones are clamped to it.
const MAX_TRACKED_US: u64 = 60_000_000;

/// An empty latency histogram, in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
        .expect("1 µs..60 s at 3 significant digits are valid histogram bounds")
}

/// Records `latency` in `histogram` (in µs; clamped to the tracked range).
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.clamp(1, MAX_TRACKED_US));
}

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// The median.
    pub p50_us: u64,
    /// The 99th percentile.
    pub p99_us: u64,
    /// The 99.9th percentile.
    pub p999_us: u64,
    /// The slowest request.
    pub max_us: u64,
    /// The mean.
    pub mean_us: f64,
}

impl Latency {
    /// The percentiles of `histogram` (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self {
                p50_us: 0,
                p99_us: 0,
                p999_us: 0,
                max_us: 0,
                mean_us: 0.0,
            };
        }
        Self {
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        }
    }
}

/// Formats microseconds for a table: `183 µs`, `1.24 ms`, `1.05 s`.
pub fn format_us(micros: u64) -> String {
    // Precision loss only past 2^52 µs (142 years).
    #[allow(clippy::cast_precision_loss)]
    let value = micros as f64;
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.2} ms", value / 1e3)
    } else {
        format!("{:.2} s", value / 1e6)
    }
}

/// Formats a signed difference in microseconds: `+42 µs`, `-1.20 ms`.
pub fn format_delta_us(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "+" };
    format!("{sign}{}", format_us(micros.unsigned_abs()))
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 0 {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut histogram = new_histogram();
        for micros in 1..=1000 {
            record(&mut histogram, Duration::from_micros(micros));
        }
        let latency = Latency::of(&histogram);
        assert_eq!(latency.p50_us, 500);
        assert_eq!(latency.p99_us, 990);
        assert_eq!(latency.max_us, 1000);
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        assert_eq!(Latency::of(&new_histogram()).max_us, 0);
    }

    #[test]
    fn latencies_beyond_the_range_are_clamped_not_lost() {
        let mut histogram = new_histogram();
        record(&mut histogram, Duration::from_secs(3600));
        record(&mut histogram, Duration::ZERO);
        assert_eq!(histogram.len(), 2);
    }

    #[test]
    fn formats_each_scale() {
        assert_eq!(format_us(183), "183 µs");
        assert_eq!(format_us(1_240), "1.24 ms");
        assert_eq!(format_us(1_050_000), "1.05 s");
        assert_eq!(format_delta_us(-1_200), "-1.20 ms");
        assert_eq!(format_delta_us(42), "+42 µs");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
