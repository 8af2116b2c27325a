//! How a [`LeastLoaded`](super::LeastLoaded) balancer weighs endpoints, validated once.

use std::time::Duration;

use super::outlier::OutlierDetection;
use crate::error::InvalidConfig;

/// The settings of a [`LeastLoaded`](super::LeastLoaded) balancer.
///
/// | setting | default | what it does |
/// |---|---|---|
/// | [`decay`](LeastLoadedConfigBuilder::decay) | 10 s | how fast a latency estimate forgets; an unused estimate fades by `1/e` per `decay` |
/// | [`slow_start`](LeastLoadedConfigBuilder::slow_start) | 10 s from 10 % | an endpoint added, closed again or back from ejection ramps up to its full share over this long |
/// | [`outlier_detection`](LeastLoadedConfigBuilder::outlier_detection) | [`OutlierDetection::default`] | ejects an endpoint that fails far more often than its peers |
///
/// ```
/// use std::time::Duration;
/// use resilience::balance::{LeastLoadedConfig, OutlierDetection};
///
/// let config = LeastLoadedConfig::builder()
///     .decay(Duration::from_secs(5))
///     .slow_start(Duration::from_secs(30), 0.05)
///     .outlier_detection(OutlierDetection::builder().failure_rate(0.1).build()?)
///     .build()?;
/// # let _ = config;
/// # Ok::<(), resilience::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeastLoadedConfig {
    pub(crate) decay: Duration,
    pub(crate) slow_start: Option<SlowStart>,
    pub(crate) outliers: Option<OutlierDetection>,
}

/// The ramp of an endpoint coming back: its weight rises from `min_weight` to 1 over `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SlowStart {
    pub(crate) window: Duration,
    pub(crate) min_weight: f64,
}

impl Default for LeastLoadedConfig {
    fn default() -> Self {
        Self {
            decay: Duration::from_secs(10),
            slow_start: Some(SlowStart {
                window: Duration::from_secs(10),
                min_weight: 0.1,
            }),
            outliers: Some(OutlierDetection::default()),
        }
    }
}

impl LeastLoadedConfig {
    /// Starts from the defaults.
    pub fn builder() -> LeastLoadedConfigBuilder {
        LeastLoadedConfigBuilder {
            config: Self::default(),
        }
    }

    /// The outlier detection in force, if any.
    pub fn outlier_detection(&self) -> Option<&OutlierDetection> {
        self.outliers.as_ref()
    }
}

/// Builds a [`LeastLoadedConfig`]; see [`LeastLoadedConfig::builder`].
#[derive(Debug, Clone)]
pub struct LeastLoadedConfigBuilder {
    config: LeastLoadedConfig,
}

impl LeastLoadedConfigBuilder {
    /// How fast latency estimates forget (default 10 s).
    pub fn decay(mut self, decay: Duration) -> Self {
        self.config.decay = decay;
        self
    }

    /// Ramps an endpoint that comes back (added, its breaker ready again, back from
    /// ejection) from `min_weight` of its share to all of it over `window` (default 10 s from
    /// 0.1).
    pub fn slow_start(mut self, window: Duration, min_weight: f64) -> Self {
        self.config.slow_start = Some(SlowStart { window, min_weight });
        self
    }

    /// An endpoint that comes back takes its full share at once.
    pub fn without_slow_start(mut self) -> Self {
        self.config.slow_start = None;
        self
    }

    /// Ejects outliers as `outliers` says.
    pub fn outlier_detection(mut self, outliers: OutlierDetection) -> Self {
        self.config.outliers = Some(outliers);
        self
    }

    /// Never ejects an endpoint for its failure rate (its breaker still guards it).
    pub fn without_outlier_detection(mut self) -> Self {
        self.config.outliers = None;
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<LeastLoadedConfig, InvalidConfig> {
        const COMPONENT: &str = "least-loaded balancer";
        let config = self.config;
        if config.decay < Duration::from_millis(1) {
            return Err(InvalidConfig::new(
                COMPONENT,
                format!(
                    "a decay of {:?} forgets every answer at once; use at least 1ms",
                    config.decay
                ),
            ));
        }
        if let Some(ramp) = config.slow_start {
            if ramp.window.is_zero() || !(ramp.min_weight > 0.0 && ramp.min_weight <= 1.0) {
                return Err(InvalidConfig::new(
                    COMPONENT,
                    format!(
                        "slow start needs a window longer than zero and a minimum weight in (0, 1], not {:?} from {}",
                        ramp.window, ramp.min_weight
                    ),
                ));
            }
        }
        Ok(config)
    }
}
