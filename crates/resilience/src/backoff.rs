//! Exponential backoff with jitter, shared by retries (the delay before attempt *n*) and the
//! circuit breaker (how long it stays open after its *n*-th consecutive re-open).
//!
//! Jitter only ever shortens a delay: the nominal delay `base × multiplierⁿ`, capped at `max`, is
//! an upper bound, and a jitter of `j` draws uniformly from `[nominal × (1 − j), nominal]`. A cap is
//! then a promise, and `j = 1` is the "full jitter" of the AWS architecture blog.

use std::time::Duration;

use rand::Rng;

use crate::error::InvalidConfig;

/// An exponential backoff schedule: `base × multiplierⁿ`, capped at `max`, shortened by jitter.
///
/// ```
/// use std::time::Duration;
/// use rand::{SeedableRng, rngs::SmallRng};
/// use resilience::ExponentialBackoff;
///
/// let backoff = ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(2))
///     .with_jitter(0.5);
/// let mut rng = SmallRng::seed_from_u64(7);
/// let delay = backoff.delay(3, &mut rng);
/// let (low, high) = backoff.bounds(3);
/// assert!(low <= delay && delay <= high);
/// assert_eq!(high, Duration::from_millis(800));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialBackoff {
    base: Duration,
    max: Duration,
    multiplier: f64,
    /// `None` until chosen: a builder given this schedule then applies its own default.
    jitter: Option<f64>,
}

impl ExponentialBackoff {
    /// Doubles from `base` up to `max`, with no jitter chosen: used as it is, its delays are not
    /// jittered, and a builder given it ([`RetryPolicyBuilder::backoff`](crate::retry::RetryPolicyBuilder::backoff),
    /// the resilient client's) keeps its own default jitter of 50 %. To have none on purpose, say
    /// so with [`with_jitter(0.0)`](Self::with_jitter).
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            multiplier: 2.0,
            jitter: None,
        }
    }

    /// Starts from `base` instead.
    pub fn with_base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Caps every delay at `max` instead.
    pub fn with_max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Grows each step by `multiplier` instead of 2 (at least 1).
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Shortens each delay by a random share of up to `jitter` (0 = none, 1 = full jitter).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// This schedule with `jitter`, unless it chose one itself.
    pub(crate) fn or_jitter(mut self, jitter: f64) -> Self {
        self.jitter = self.jitter.or(Some(jitter));
        self
    }

    /// The jitter in force: the one chosen, or none.
    pub fn jitter(&self) -> f64 {
        self.jitter.unwrap_or(0.0)
    }

    /// The first delay.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The longest delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay before step `n` (0-based), jittered with `rng`.
    pub fn delay<R: Rng + ?Sized>(&self, n: u32, rng: &mut R) -> Duration {
        jitter_down(self.nominal(n), self.jitter(), rng)
    }

    /// The shortest and longest delay [`delay`](Self::delay) can return for step `n`.
    pub fn bounds(&self, n: u32) -> (Duration, Duration) {
        let nominal = self.nominal(n);
        (nominal.mul_f64(1.0 - self.jitter()), nominal)
    }

    fn nominal(&self, n: u32) -> Duration {
        let exponent = i32::try_from(n).unwrap_or(i32::MAX);
        let factor = self.multiplier.powi(exponent);
        let secs = self.base.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    pub(crate) fn validate(&self, component: &'static str) -> Result<(), InvalidConfig> {
        if self.base.is_zero() {
            return Err(InvalidConfig::new(
                component,
                "the base delay must be greater than zero",
            ));
        }
        if self.max < self.base {
            return Err(InvalidConfig::new(
                component,
                format!(
                    "the maximum delay {:?} is shorter than the base delay {:?}",
                    self.max, self.base
                ),
            ));
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(InvalidConfig::new(
                component,
                format!(
                    "the backoff multiplier must be a finite number >= 1, got {}",
                    self.multiplier
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter()) {
            return Err(InvalidConfig::new(
                component,
                format!("jitter must be between 0 and 1, got {}", self.jitter()),
            ));
        }
        Ok(())
    }
}

/// `{ base = "50ms", max = "2s", multiplier = 2.0, jitter = 0.5 }` (feature `serde`):
/// `multiplier` defaults to 2 and `jitter` is left unchosen, as with [`ExponentialBackoff::new`]; the
/// schedule is checked as every builder that takes one checks it.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for ExponentialBackoff {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use crate::config_file::HumanDuration;

        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            base: HumanDuration,
            max: HumanDuration,
            multiplier: Option<f64>,
            jitter: Option<f64>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let mut backoff = Self::new(raw.base.0, raw.max.0);
        if let Some(multiplier) = raw.multiplier {
            backoff = backoff.with_multiplier(multiplier);
        }
        if let Some(jitter) = raw.jitter {
            backoff = backoff.with_jitter(jitter);
        }
        backoff
            .validate("backoff")
            .map_err(serde::de::Error::custom)?;
        Ok(backoff)
    }
}

/// `nominal` shortened by a random share of up to `jitter` (0 to 1), so that clients waiting
/// alike do not all wake together; `nominal` itself when `jitter` is 0.
pub(crate) fn jitter_down<R: Rng + ?Sized>(
    nominal: Duration,
    jitter: f64,
    rng: &mut R,
) -> Duration {
    if jitter == 0.0 {
        return nominal;
    }
    let cut: f64 = rng.random_range(0.0..=jitter);
    nominal.mul_f64(1.0 - cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::SmallRng};

    #[test]
    fn a_schedule_without_jitter_of_its_own_takes_the_builders_and_zero_is_a_choice() {
        let unchosen = ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(unchosen.jitter(), 0.0, "used as it is, it does not jitter");
        assert_eq!(unchosen.or_jitter(0.5).jitter(), 0.5);
        assert_eq!(unchosen.with_jitter(0.2).or_jitter(0.5).jitter(), 0.2);
        assert_eq!(unchosen.with_jitter(0.0).or_jitter(0.5).jitter(), 0.0);
    }

    #[test]
    fn grows_by_the_multiplier_until_the_cap() {
        let backoff =
            ExponentialBackoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let mut rng = SmallRng::seed_from_u64(1);
        let delays: Vec<_> = (0..5)
            .map(|n| backoff.delay(n, &mut rng).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn huge_step_numbers_stay_at_the_cap() {
        let backoff = ExponentialBackoff::new(Duration::from_millis(1), Duration::from_secs(30));
        assert_eq!(backoff.bounds(u32::MAX).1, Duration::from_secs(30));
    }

    #[test]
    fn rejects_nonsense() {
        let ok = ExponentialBackoff::new(Duration::from_millis(1), Duration::from_secs(1));
        assert!(ok.validate("retry").is_ok());
        assert!(ok.with_jitter(1.5).validate("retry").is_err());
        assert!(ok.with_multiplier(0.5).validate("retry").is_err());
        let inverted = ExponentialBackoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert!(
            inverted
                .validate("retry")
                .unwrap_err()
                .reason()
                .contains("shorter")
        );
        assert!(
            ExponentialBackoff::new(Duration::ZERO, Duration::from_secs(1))
                .validate("retry")
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn delays_stay_within_their_bounds(
            base_ms in 1u64..10_000,
            extra_ms in 0u64..100_000,
            multiplier in 1.0f64..4.0,
            jitter in 0.0f64..=1.0,
            step in 0u32..64,
            seed: u64,
        ) {
            let base = Duration::from_millis(base_ms);
            let max = base + Duration::from_millis(extra_ms);
            let backoff = ExponentialBackoff::new(base, max).with_multiplier(multiplier).with_jitter(jitter);
            let mut rng = SmallRng::seed_from_u64(seed);
            let delay = backoff.delay(step, &mut rng);
            let (low, high) = backoff.bounds(step);
            prop_assert!(delay <= max, "{delay:?} above the cap {max:?}");
            prop_assert!(high <= max);
            prop_assert!(low <= delay && delay <= high, "{delay:?} outside {low:?}..={high:?}");
            let nominal = (base.as_secs_f64() * multiplier.powi(step as i32)).min(max.as_secs_f64());
            prop_assert!((high.as_secs_f64() - nominal).abs() < 1e-6);
        }

        #[test]
        fn the_same_seed_gives_the_same_schedule(seed: u64) {
            let backoff = ExponentialBackoff::new(Duration::from_millis(10), Duration::from_secs(5)).with_jitter(1.0);
            let mut a = SmallRng::seed_from_u64(seed);
            let mut b = SmallRng::seed_from_u64(seed);
            let first: Vec<_> = (0..10).map(|n| backoff.delay(n, &mut a)).collect();
            let second: Vec<_> = (0..10).map(|n| backoff.delay(n, &mut b)).collect();
            prop_assert_eq!(first, second);
        }
    }
}
