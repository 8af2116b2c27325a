//! Reading a [`HedgeConfig`] from a file (feature `serde`).

use serde::de::{Deserialize, Deserializer, Error as _};

use super::HedgeConfig;
use crate::config_file::HumanDuration;

/// The file's fields, one per builder method; an absent field keeps the builder's default.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    percentile: Option<f64>,
    min_delay: Option<HumanDuration>,
    max_delay: Option<HumanDuration>,
    min_samples: Option<u64>,
    window: Option<HumanDuration>,
}

/// Reads the builder's settings (`percentile`, `min_delay`, `max_delay`, `min_samples`,
/// `window`) and runs [`build`](super::HedgeConfigBuilder::build), so a file fails with the
/// builder's message.
impl<'de> Deserialize<'de> for HedgeConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawConfig::deserialize(deserializer)?;
        let mut builder = HedgeConfig::builder();
        if let Some(percentile) = raw.percentile {
            builder = builder.percentile(percentile);
        }
        if let Some(delay) = raw.min_delay {
            builder = builder.min_delay(delay.0);
        }
        if let Some(delay) = raw.max_delay {
            builder = builder.max_delay(delay.0);
        }
        if let Some(n) = raw.min_samples {
            builder = builder.min_samples(n);
        }
        if let Some(window) = raw.window {
            builder = builder.window(window.0);
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
        let config: HedgeConfig = toml::from_str(
            r#"
            percentile = 0.99
            min_delay = "5ms"
            max_delay = "500ms"
            min_samples = 50
            window = "1s"
            "#,
        )
        .unwrap();
        let built = HedgeConfig::builder()
            .percentile(0.99)
            .min_delay(Duration::from_millis(5))
            .max_delay(Duration::from_millis(500))
            .min_samples(50)
            .window(Duration::from_secs(1))
            .build()
            .unwrap();
        assert_eq!(config, built);
    }

    #[test]
    fn an_invalid_value_fails_with_the_builders_message() {
        let from_builder = HedgeConfig::builder()
            .min_delay(Duration::from_secs(2))
            .max_delay(Duration::from_secs(1))
            .build()
            .unwrap_err()
            .to_string();
        let error =
            toml::from_str::<HedgeConfig>("min_delay = \"2s\"\nmax_delay = \"1s\"").unwrap_err();
        assert!(error.to_string().contains(&from_builder), "{error}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let error = toml::from_str::<HedgeConfig>("delay = \"5ms\"").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `delay`"),
            "{error}"
        );
    }
}
