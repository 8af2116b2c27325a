//! The retry policy's and the retry budget's settings as read from a file (feature `serde`).
//!
//! A [`RetryPolicy`] holds live state (counters, a jitter source, a shared budget), so what a
//! file describes is its settings: a [`RetryConfig`] that makes the policy's builder.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};

use super::{RetryBudget, RetryErrors, RetryPolicy, RetryPolicyBuilder};
use crate::backoff::ExponentialBackoff;
use crate::config_file::{HumanDuration, Switch};
use crate::error::InvalidConfig;

/// The settings of a [`RetryBudget`]: `{ ratio = 0.2, min_per_sec = 10, max_tokens = 100 }`,
/// each optional (those are the defaults), checked by [`RetryBudget::new`] when read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudgetConfig {
    ratio: f64,
    min_per_sec: u32,
    max_tokens: u32,
}

impl Default for RetryBudgetConfig {
    /// The same as [`RetryBudget::default`], with its cap of 100 unspent tokens.
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_sec: 10,
            max_tokens: 100,
        }
    }
}

impl RetryBudgetConfig {
    /// A fresh budget with these settings.
    pub fn build(&self) -> Result<RetryBudget, InvalidConfig> {
        Ok(RetryBudget::new(self.ratio, self.min_per_sec)?.with_max_tokens(self.max_tokens))
    }
}

impl<'de> Deserialize<'de> for RetryBudgetConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            ratio: Option<f64>,
            min_per_sec: Option<u32>,
            max_tokens: Option<u32>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let defaults = Self::default();
        let config = Self {
            ratio: raw.ratio.unwrap_or(defaults.ratio),
            min_per_sec: raw.min_per_sec.unwrap_or(defaults.min_per_sec),
            max_tokens: raw.max_tokens.unwrap_or(defaults.max_tokens),
        };
        config.build().map_err(D::Error::custom)?;
        Ok(config)
    }
}

/// The settings of a [`RetryPolicy`], read from a file and checked by the policy's builder.
///
/// Every field is optional and keeps [`RetryPolicy::builder`]'s default when absent:
///
/// ```toml
/// max_attempts = 3
/// backoff = { base = "50ms", max = "2s", jitter = 0.5 }
/// deadline = "3s"
/// min_attempt_time = "100ms"
/// retry_after_cap = "1s"
/// budget = { ratio = 0.2, min_per_sec = 10 }   # or "off"
/// seed = 7
/// ```
///
/// ```
/// use resilience::retry::RetryConfig;
///
/// let config: RetryConfig = toml::from_str("max_attempts = 2\ndeadline = \"1s\"")?;
/// let policy = config.build()?;
/// # let _ = policy;
/// let error = toml::from_str::<RetryConfig>("max_attempts = 0").unwrap_err();
/// assert!(error.to_string().contains("at least 1 attempt is needed"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetryConfig {
    max_attempts: Option<u32>,
    backoff: Option<ExponentialBackoff>,
    deadline: Option<Duration>,
    min_attempt_time: Option<Duration>,
    retry_after_cap: Option<Duration>,
    budget: Option<Switch<RetryBudgetConfig>>,
    seed: Option<u64>,
}

impl RetryConfig {
    /// The policy's builder with these settings, to add [rules](RetryPolicyBuilder::rules) or
    /// share a budget before building.
    pub fn builder(&self) -> Result<RetryPolicyBuilder<RetryErrors>, InvalidConfig> {
        let mut builder = RetryPolicy::builder();
        if let Some(n) = self.max_attempts {
            builder = builder.max_attempts(n);
        }
        if let Some(backoff) = self.backoff {
            builder = builder.backoff(backoff);
        }
        if let Some(deadline) = self.deadline {
            builder = builder.deadline(deadline);
        }
        if let Some(time) = self.min_attempt_time {
            builder = builder.min_attempt_time(time);
        }
        if let Some(cap) = self.retry_after_cap {
            builder = builder.retry_after_cap(cap);
        }
        match self.budget {
            Some(Switch::On(budget)) => builder = builder.budget(budget.build()?),
            Some(Switch::Off) => builder = builder.without_budget(),
            None => {}
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        Ok(builder)
    }

    /// The policy, retrying any error ([`RetryErrors`]).
    pub fn build(&self) -> Result<RetryPolicy, InvalidConfig> {
        self.builder()?.build()
    }
}

impl<'de> Deserialize<'de> for RetryConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            max_attempts: Option<u32>,
            backoff: Option<ExponentialBackoff>,
            deadline: Option<HumanDuration>,
            min_attempt_time: Option<HumanDuration>,
            retry_after_cap: Option<HumanDuration>,
            budget: Option<Switch<RetryBudgetConfig>>,
            seed: Option<u64>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let config = Self {
            max_attempts: raw.max_attempts,
            backoff: raw.backoff,
            deadline: raw.deadline.map(|d| d.0),
            min_attempt_time: raw.min_attempt_time.map(|d| d.0),
            retry_after_cap: raw.retry_after_cap.map(|d| d.0),
            budget: raw.budget,
            seed: raw.seed,
        };
        config.build().map_err(D::Error::custom)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_document_reads_every_setting() {
        let config: RetryConfig = toml::from_str(
            r#"
            max_attempts = 4
            backoff = { base = "20ms", max = "1s", multiplier = 3.0, jitter = 0.25 }
            deadline = "3s"
            min_attempt_time = "100ms"
            retry_after_cap = "1s"
            budget = { ratio = 0.1, min_per_sec = 5, max_tokens = 20 }
            seed = 7
            "#,
        )
        .unwrap();
        let expected = RetryConfig {
            max_attempts: Some(4),
            backoff: Some(
                ExponentialBackoff::new(Duration::from_millis(20), Duration::from_secs(1))
                    .with_multiplier(3.0)
                    .with_jitter(0.25),
            ),
            deadline: Some(Duration::from_secs(3)),
            min_attempt_time: Some(Duration::from_millis(100)),
            retry_after_cap: Some(Duration::from_secs(1)),
            budget: Some(Switch::On(RetryBudgetConfig {
                ratio: 0.1,
                min_per_sec: 5,
                max_tokens: 20,
            })),
            seed: Some(7),
        };
        assert_eq!(config, expected);
        let policy = config.build().unwrap();
        assert_eq!(policy.retry_after_cap(), Duration::from_secs(1));
        assert!(policy.budget().is_some());
    }

    #[test]
    fn the_budget_can_be_off() {
        let config: RetryConfig = toml::from_str("budget = \"off\"").unwrap();
        assert!(config.build().unwrap().budget().is_none());
    }

    #[test]
    fn an_invalid_policy_fails_with_the_builders_message() {
        let from_builder = RetryPolicy::builder()
            .deadline(Duration::from_secs(1))
            .retry_after_cap(Duration::from_secs(2))
            .build()
            .unwrap_err()
            .to_string();
        let error = toml::from_str::<RetryConfig>("deadline = \"1s\"\nretry_after_cap = \"2s\"")
            .unwrap_err();
        assert!(error.to_string().contains(&from_builder), "{error}");
    }

    #[test]
    fn an_invalid_budget_fails_with_the_budgets_message() {
        let from_budget = RetryBudget::new(-0.5, 1).unwrap_err().to_string();
        let error = toml::from_str::<RetryConfig>("budget = { ratio = -0.5 }").unwrap_err();
        assert!(error.to_string().contains(&from_budget), "{error}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let error = toml::from_str::<RetryConfig>("attempts = 3").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `attempts`"),
            "{error}"
        );
    }
}
