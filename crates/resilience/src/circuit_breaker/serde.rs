//! Reading a [`CircuitBreakerConfig`] from a file (feature `serde`).

use serde::de::{Deserialize, Deserializer, Error as _};

use super::CircuitBreakerConfig;
use crate::config_file::{HumanDuration, Switch};
use crate::window::SlidingWindow;

/// The file's fields, one per builder method; an absent field keeps the builder's default.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// A number, or `"off"` for [`without_consecutive_failures`](super::CircuitBreakerConfigBuilder::without_consecutive_failures).
    consecutive_failures: Option<Switch<u32>>,
    failure_rate: Option<f64>,
    slow_call_rate: Option<RawSlowCalls>,
    sliding_window: Option<RawWindow>,
    minimum_calls: Option<u32>,
    open_duration: Option<HumanDuration>,
    max_open_duration: Option<HumanDuration>,
    open_backoff_multiplier: Option<f64>,
    open_jitter: Option<f64>,
    half_open_probes: Option<u32>,
    half_open_max_wait: Option<HumanDuration>,
    seed: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlowCalls {
    threshold: HumanDuration,
    rate: f64,
}

/// `{ count = 100 }` or `{ time = "10s" }`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawWindow {
    Count(u32),
    Time(HumanDuration),
}

/// Reads the builder's settings and runs [`build`](super::CircuitBreakerConfigBuilder::build),
/// so a file is held to exactly the rules code is, and fails with the builder's message:
///
/// ```
/// use resilience::CircuitBreakerConfig;
///
/// let config: CircuitBreakerConfig = toml::from_str(
///     r#"
///     consecutive_failures = 3
///     open_duration = "2s"
///     "#,
/// )?;
/// assert_eq!(config, CircuitBreakerConfig::builder()
///     .consecutive_failures(3)
///     .open_duration(std::time::Duration::from_secs(2))
///     .build()?);
///
/// let error = toml::from_str::<CircuitBreakerConfig>("failure_rate = 1.5");
/// assert!(error.unwrap_err().to_string().contains("the failure rate must be in (0, 1]"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<'de> Deserialize<'de> for CircuitBreakerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawConfig::deserialize(deserializer)?;
        let mut builder = CircuitBreakerConfig::builder();
        match raw.consecutive_failures {
            Some(Switch::On(n)) => builder = builder.consecutive_failures(n),
            Some(Switch::Off) => builder = builder.without_consecutive_failures(),
            None => {}
        }
        if let Some(rate) = raw.failure_rate {
            builder = builder.failure_rate(rate);
        }
        if let Some(slow) = raw.slow_call_rate {
            builder = builder.slow_call_rate(slow.threshold.0, slow.rate);
        }
        if let Some(window) = raw.sliding_window {
            builder = builder.sliding_window(match window {
                RawWindow::Count(n) => SlidingWindow::Count(n),
                RawWindow::Time(span) => SlidingWindow::Time(span.0),
            });
        }
        if let Some(n) = raw.minimum_calls {
            builder = builder.minimum_calls(n);
        }
        // Before the maximum: `open_duration` raises the maximum to itself when it is longer.
        if let Some(duration) = raw.open_duration {
            builder = builder.open_duration(duration.0);
        }
        if let Some(duration) = raw.max_open_duration {
            builder = builder.max_open_duration(duration.0);
        }
        if let Some(multiplier) = raw.open_backoff_multiplier {
            builder = builder.open_backoff_multiplier(multiplier);
        }
        if let Some(jitter) = raw.open_jitter {
            builder = builder.open_jitter(jitter);
        }
        if let Some(n) = raw.half_open_probes {
            builder = builder.half_open_probes(n);
        }
        if let Some(wait) = raw.half_open_max_wait {
            builder = builder.half_open_max_wait(wait.0);
        }
        if let Some(seed) = raw.seed {
            builder = builder.seed(seed);
        }
        builder.build().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_toml_document_builds_what_the_builder_builds() {
        let config: CircuitBreakerConfig = toml::from_str(
            r#"
            consecutive_failures = "off"
            failure_rate = 0.5
            slow_call_rate = { threshold = "2s", rate = 0.8 }
            sliding_window = { time = "10s" }
            minimum_calls = 20
            open_duration = "2s"
            max_open_duration = "30s"
            open_backoff_multiplier = 1.5
            open_jitter = 0.0
            half_open_probes = 3
            half_open_max_wait = "5s"
            seed = 7
            "#,
        )
        .unwrap();
        let built = CircuitBreakerConfig::builder()
            .without_consecutive_failures()
            .failure_rate(0.5)
            .slow_call_rate(Duration::from_secs(2), 0.8)
            .sliding_window(SlidingWindow::Time(Duration::from_secs(10)))
            .minimum_calls(20)
            .open_duration(Duration::from_secs(2))
            .max_open_duration(Duration::from_secs(30))
            .open_backoff_multiplier(1.5)
            .open_jitter(0.0)
            .half_open_probes(3)
            .half_open_max_wait(Duration::from_secs(5))
            .seed(7)
            .build()
            .unwrap();
        assert_eq!(config, built);
    }

    #[test]
    fn an_empty_document_is_the_default() {
        let config: CircuitBreakerConfig = toml::from_str("").unwrap();
        assert_eq!(config, CircuitBreakerConfig::builder().build().unwrap());
    }

    #[test]
    fn an_invalid_value_fails_with_the_builders_message() {
        let from_builder = CircuitBreakerConfig::builder()
            .failure_rate(1.5)
            .build()
            .unwrap_err()
            .to_string();
        let error = toml::from_str::<CircuitBreakerConfig>("failure_rate = 1.5").unwrap_err();
        assert!(error.to_string().contains(&from_builder), "{error}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let error = toml::from_str::<CircuitBreakerConfig>("failure_ratio = 0.5").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `failure_ratio`"),
            "{error}"
        );
    }

    #[test]
    fn a_duration_without_a_unit_is_refused() {
        let error = toml::from_str::<CircuitBreakerConfig>("open_duration = \"5\"").unwrap_err();
        assert!(error.to_string().contains("has no unit"), "{error}");
    }
}
