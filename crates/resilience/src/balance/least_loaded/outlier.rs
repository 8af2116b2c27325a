//! Outlier detection's decisions, as plain functions: whether an endpoint's failure rate stands
//! out from its peers', whether the fleet can spare it, how long it stays out, and when the
//! fleet is too unhealthy to leave anything out (panic).
//!
//! A breaker sees one endpoint and trips on failures in a row; that misses a replica that fails
//! one call in three, since its failures are never consecutive for long. Comparing each endpoint
//! with its peers catches it, and a fleet-wide failure (a bad deploy everywhere, a shared
//! database down) ejects nobody, since no endpoint stands out: that is the breakers' and the
//! retry budget's job. These are Envoy's failure-percentage outlier detection,
//! `max_ejection_percent` and panic threshold.

use std::time::Duration;

use crate::error::InvalidConfig;
use crate::window::WindowCounts;

/// An endpoint's failure rate must be at least this many times its peers' to stand out.
pub(crate) const PEER_FACTOR: f64 = 2.0;

/// And the difference must be this many standard errors wide (a two-proportion z-test): the
/// rule is judged on every failure, thousands of times a minute, so chance alone must almost
/// never pass it. An endpoint failing 30 % of 50 calls against peers failing none passes.
pub(crate) const SIGNIFICANCE: f64 = 4.0;

/// When an endpoint is ejected from a [`LeastLoaded`](super::LeastLoaded) balancer for failing
/// more than its peers, for how long, and how much of the fleet may be out at once.
///
/// The defaults eject an endpoint that failed at least 20 % of at least 50 calls over the last
/// 10 s while failing at least twice as often as its peers together (and by a margin chance
/// does not explain); for 10 s the first time,
/// 10 s more for each ejection in a row, up to 5 min. At most half the endpoints are ejected at
/// once (always at least one, in a fleet of two or more); when fewer than half are healthy, the
/// balancer ignores ejections and spreads calls over every endpoint (panic), rather than pile
/// them all on the few left. Breakers are not capped: an endpoint that refuses connections is
/// skipped however many others are.
///
/// ```
/// use std::time::Duration;
/// use resilience::balance::OutlierDetection;
///
/// let outliers = OutlierDetection::builder()
///     .failure_rate(0.1)
///     .minimum_calls(50)
///     .base_ejection(Duration::from_secs(30))
///     .build()?;
/// # let _ = outliers;
/// assert!(OutlierDetection::builder().max_ejected_share(1.5).build().is_err());
/// # Ok::<(), resilience::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierDetection {
    pub(crate) failure_rate: f64,
    pub(crate) minimum_calls: u32,
    pub(crate) window: Duration,
    pub(crate) base_ejection: Duration,
    pub(crate) max_ejection: Duration,
    pub(crate) max_ejected_share: f64,
    pub(crate) panic_threshold: f64,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            failure_rate: 0.2,
            minimum_calls: 50,
            window: Duration::from_secs(10),
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
            max_ejected_share: 0.5,
            panic_threshold: 0.5,
        }
    }
}

impl OutlierDetection {
    /// Starts from the defaults.
    pub fn builder() -> OutlierDetectionBuilder {
        OutlierDetectionBuilder {
            config: Self::default(),
        }
    }

    /// The span over which failure rates are measured.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether an endpoint with `own` calls in the window stands out from `peers` (every other
    /// endpoint's calls, together): enough calls to judge, a failure rate at the threshold,
    /// and at least [`PEER_FACTOR`] times the peers'. Without peers there is nothing to stand
    /// out from.
    pub(crate) fn stands_out(&self, own: WindowCounts, peers: WindowCounts) -> bool {
        if own.calls < self.minimum_calls || peers.calls < self.minimum_calls {
            return false;
        }
        let rate = |counts: WindowCounts| f64::from(counts.failures) / f64::from(counts.calls);
        let (own_rate, peer_rate) = (rate(own), rate(peers));
        let pooled = f64::from(own.failures + peers.failures) / f64::from(own.calls + peers.calls);
        let error =
            (pooled * (1.0 - pooled) * (1.0 / f64::from(own.calls) + 1.0 / f64::from(peers.calls)))
                .sqrt();
        own_rate >= self.failure_rate
            && own_rate >= PEER_FACTOR * peer_rate
            && own_rate - peer_rate >= SIGNIFICANCE * error
    }

    /// Whether one more of `total` endpoints may be ejected while `ejected` already are: at
    /// most the maximum share, but always one in a fleet of two or more.
    pub(crate) fn may_eject(&self, ejected: usize, total: usize) -> bool {
        let allowed = ((self.max_ejected_share * total as f64).floor() as usize).max(1);
        total >= 2 && ejected < allowed
    }

    /// How long the `nth` ejection in a row lasts (the first is 1).
    pub(crate) fn ejection(&self, nth: u32) -> Duration {
        self.base_ejection
            .saturating_mul(nth.max(1))
            .min(self.max_ejection)
    }

    /// Whether so few of `total` endpoints are left that ejections are ignored.
    pub(crate) fn panics(&self, ejected: usize, total: usize) -> bool {
        let healthy = total.saturating_sub(ejected);
        (healthy as f64) < self.panic_threshold * total as f64
    }
}

/// Builds an [`OutlierDetection`]; see [`OutlierDetection::builder`].
#[derive(Debug, Clone)]
pub struct OutlierDetectionBuilder {
    config: OutlierDetection,
}

impl OutlierDetectionBuilder {
    /// The failure rate at or above which an endpoint may be ejected (default 0.2).
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.config.failure_rate = rate;
        self
    }

    /// Calls in the window below which an endpoint (or its peers, together) is not judged
    /// (default 50).
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.config.minimum_calls = n;
        self
    }

    /// The span over which failure rates are measured (default 10 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// How long the first ejection lasts; each ejection in a row adds as much again (default
    /// 10 s).
    pub fn base_ejection(mut self, duration: Duration) -> Self {
        self.config.base_ejection = duration;
        self
    }

    /// The longest ejection (default 5 min).
    pub fn max_ejection(mut self, duration: Duration) -> Self {
        self.config.max_ejection = duration;
        self
    }

    /// The largest share of endpoints ejected at once (default 0.5; at least one endpoint may
    /// always be ejected from a fleet of two or more).
    pub fn max_ejected_share(mut self, share: f64) -> Self {
        self.config.max_ejected_share = share;
        self
    }

    /// Below this share of healthy endpoints, ejections are ignored and calls spread over every
    /// endpoint (default 0.5; 0 never panics).
    pub fn panic_threshold(mut self, share: f64) -> Self {
        self.config.panic_threshold = share;
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<OutlierDetection, InvalidConfig> {
        const COMPONENT: &str = "outlier detection";
        let config = self.config;
        let share = |value: f64| (0.0..=1.0).contains(&value);
        if !(config.failure_rate > 0.0 && config.failure_rate <= 1.0) {
            return Err(InvalidConfig::new(
                COMPONENT,
                format!(
                    "the failure rate must be in (0, 1], not {}",
                    config.failure_rate
                ),
            ));
        }
        if !share(config.max_ejected_share) || !share(config.panic_threshold) {
            return Err(InvalidConfig::new(
                COMPONENT,
                "the maximum ejected share and the panic threshold must be in [0, 1]",
            ));
        }
        if config.minimum_calls == 0 {
            return Err(InvalidConfig::new(
                COMPONENT,
                "at least 1 call is needed to judge",
            ));
        }
        if config.window < Duration::from_millis(10) || config.base_ejection.is_zero() {
            return Err(InvalidConfig::new(
                COMPONENT,
                "the window must be at least 10ms and the ejection longer than zero",
            ));
        }
        if config.max_ejection < config.base_ejection {
            return Err(InvalidConfig::new(
                COMPONENT,
                format!(
                    "the longest ejection ({:?}) is shorter than the first ({:?})",
                    config.max_ejection, config.base_ejection
                ),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(calls: u32, failures: u32) -> WindowCounts {
        WindowCounts {
            calls,
            failures,
            slow: 0,
        }
    }

    #[test]
    fn an_endpoint_failing_a_third_of_its_calls_stands_out_from_healthy_peers() {
        let rule = OutlierDetection::default();
        assert!(rule.stands_out(counts(100, 30), counts(100, 0)));
        assert!(!rule.stands_out(counts(100, 10), counts(100, 0)));
    }

    #[test]
    fn a_fleet_failing_alike_ejects_nobody() {
        let rule = OutlierDetection::default();
        assert!(!rule.stands_out(counts(100, 100), counts(100, 100)));
        assert!(!rule.stands_out(counts(100, 40), counts(300, 25 * 3)));
        // Chance: 20 of 50 against 9 of 50 is twice the rate, but not beyond doubt.
        assert!(!rule.stands_out(counts(50, 20), counts(50, 9)));
    }

    #[test]
    fn too_few_calls_or_no_peers_are_not_judged() {
        let rule = OutlierDetection::default();
        assert!(!rule.stands_out(counts(49, 49), counts(100, 0)));
        assert!(!rule.stands_out(counts(100, 100), counts(0, 0)));
        assert!(rule.stands_out(counts(50, 15), counts(50, 0)));
    }

    #[test]
    fn at_most_the_maximum_share_is_ejected_but_always_one_of_two() {
        let rule = OutlierDetection::default();
        assert!(rule.may_eject(0, 2));
        assert!(!rule.may_eject(1, 2));
        assert!(rule.may_eject(4, 10));
        assert!(!rule.may_eject(5, 10));
        assert!(!rule.may_eject(0, 1));
        let one_in_ten = OutlierDetection::builder()
            .max_ejected_share(0.1)
            .build()
            .unwrap();
        assert!(one_in_ten.may_eject(0, 3));
        assert!(!one_in_ten.may_eject(1, 3));
    }

    #[test]
    fn ejections_in_a_row_last_longer_up_to_the_maximum() {
        let rule = OutlierDetection::default();
        assert_eq!(rule.ejection(1), Duration::from_secs(10));
        assert_eq!(rule.ejection(3), Duration::from_secs(30));
        assert_eq!(rule.ejection(1000), Duration::from_secs(300));
    }

    #[test]
    fn fewer_healthy_than_the_threshold_panics() {
        let rule = OutlierDetection::default();
        assert!(!rule.panics(1, 2));
        assert!(rule.panics(3, 5));
        assert!(!rule.panics(0, 0));
        let never = OutlierDetection::builder()
            .panic_threshold(0.0)
            .build()
            .unwrap();
        assert!(!never.panics(2, 2));
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        let error = OutlierDetection::builder()
            .failure_rate(0.0)
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("failure rate"), "{error}");
        let error = OutlierDetection::builder()
            .base_ejection(Duration::from_secs(60))
            .max_ejection(Duration::from_secs(30))
            .build()
            .unwrap_err();
        assert!(
            error.to_string().contains("shorter than the first"),
            "{error}"
        );
    }
}
