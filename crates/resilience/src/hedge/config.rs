//! When to hedge, validated once when built.

use std::time::Duration;

use super::latency::DelayRule;
use crate::error::InvalidConfig;

/// A validated hedging configuration.
///
/// The default hedges a call still unanswered at the 95th percentile of the last 2 s of
/// latencies, never sooner than 10 ms nor later than 1 s, and only once those 2 s held at least
/// 20 calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgeConfig {
    pub(crate) rule: DelayRule,
    pub(crate) window: Duration,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self {
            rule: DelayRule {
                percentile: 0.95,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_secs(1),
                min_samples: 20,
            },
            window: Duration::from_secs(2),
        }
    }
}

impl HedgeConfig {
    /// Starts from the defaults.
    pub fn builder() -> HedgeConfigBuilder {
        HedgeConfigBuilder {
            config: Self::default(),
        }
    }
}

/// Builds a [`HedgeConfig`]; [`build`](Self::build) rejects settings that cannot work.
#[derive(Debug, Clone)]
pub struct HedgeConfigBuilder {
    config: HedgeConfig,
}

impl HedgeConfigBuilder {
    /// Hedges calls slower than this share (0 < p < 1) of the last window's calls.
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.config.rule.percentile = percentile;
        self
    }

    /// Never hedges sooner than `delay` after the call.
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.config.rule.min_delay = delay;
        self
    }

    /// Never waits longer than `delay` before hedging.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.config.rule.max_delay = delay;
        self
    }

    /// Hedges only after a window that saw at least `n` calls.
    pub fn min_samples(mut self, n: u64) -> Self {
        self.config.rule.min_samples = n;
        self
    }

    /// Measures latency over windows of `window`; each window's percentile sets the delay for
    /// the next.
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<HedgeConfig, InvalidConfig> {
        let config = self.config;
        let invalid = |reason: String| Err(InvalidConfig::new("hedge", reason));
        let rule = config.rule;
        if !(rule.percentile > 0.0 && rule.percentile < 1.0) {
            return invalid(format!(
                "the percentile must be in (0, 1), got {}",
                rule.percentile
            ));
        }
        if rule.min_delay.is_zero() {
            return invalid("the minimum delay must be greater than zero".into());
        }
        if rule.max_delay < rule.min_delay {
            return invalid(format!(
                "the maximum delay {:?} is shorter than the minimum {:?}",
                rule.max_delay, rule.min_delay
            ));
        }
        if rule.min_samples == 0 {
            return invalid("at least 1 sample is needed".into());
        }
        if config.window < Duration::from_millis(10) {
            return invalid(format!(
                "the window must span at least 10ms, got {:?}",
                config.window
            ));
        }
        Ok(config)
    }
}
