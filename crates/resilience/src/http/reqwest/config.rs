//! A whole [`ResilientClient`]'s configuration, read from a file (features `reqwest` and
//! `serde`).

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};

use super::{ResilientClient, ResilientClientBuilder};
use crate::backoff::ExponentialBackoff;
use crate::circuit_breaker::CircuitBreakerConfig;
use crate::config_file::{HumanDuration, Switch};
use crate::error::InvalidConfig;
use crate::hedge::HedgeConfig;
use crate::retry::RetryBudgetConfig;

/// The settings of a [`ResilientClientBuilder`], read from a file: one upstream, its endpoints,
/// timeouts, attempts, breaker, hedge and health check.
///
/// Only `name` and `endpoints` are required; every other field keeps the builder's default.
/// `health_check` and `hedge` may be `"off"`. When read, the configuration is built once,
/// exactly as [`ResilientClientBuilder::build`] builds it, so a file that would not build fails
/// to read, with the builder's message.
///
/// ```
/// use resilience::http::ResilientClientConfig;
///
/// let config: ResilientClientConfig = toml::from_str(r#"
///     name = "users"
///     endpoints = ["http://127.0.0.1:8081", "http://127.0.0.1:8083"]
///     attempt_timeout = "500ms"
///     deadline = "2s"
///     hedge = "off"
/// "#)?;
/// let users = config.builder().build()?;
/// assert_eq!(users.name(), "users");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ResilientClientConfig {
    name: String,
    endpoints: Vec<String>,
    attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
    max_attempts: Option<u32>,
    backoff: Option<ExponentialBackoff>,
    retry_budget: Option<RetryBudgetConfig>,
    retry_after_cap: Option<Duration>,
    max_response_body: Option<usize>,
    circuit_breaker: Option<CircuitBreakerConfig>,
    health_check: Option<Switch<HealthCheckConfig>>,
    hedge: Option<Switch<HedgeConfig>>,
    seed: Option<u64>,
}

/// `{ path = "/health", interval = "250ms", timeout = "250ms" }`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckConfig {
    path: String,
    interval: HumanDuration,
    timeout: HumanDuration,
}

impl ResilientClientConfig {
    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The builder with these settings, to add what a file cannot hold (a
    /// [`client`](ResilientClientBuilder::client) with extra roots, say) before building.
    pub fn builder(&self) -> ResilientClientBuilder {
        let mut builder =
            ResilientClient::builder(self.name.as_str()).endpoints(self.endpoints.iter().cloned());
        if let Some(timeout) = self.attempt_timeout {
            builder = builder.attempt_timeout(timeout);
        }
        if let Some(deadline) = self.deadline {
            builder = builder.deadline(deadline);
        }
        if let Some(n) = self.max_attempts {
            builder = builder.max_attempts(n);
        }
        if let Some(backoff) = self.backoff {
            builder = builder.backoff(backoff);
        }
        if let Some(budget) = self.retry_budget {
            // Checked when the file was read, and a config cannot be made any other way.
            let budget = budget
                .build()
                .expect("a retry budget is checked when its configuration is read");
            builder = builder.retry_budget(budget);
        }
        if let Some(cap) = self.retry_after_cap {
            builder = builder.retry_after_cap(cap);
        }
        if let Some(bytes) = self.max_response_body {
            builder = builder.max_response_body(bytes);
        }
        if let Some(breaker) = &self.circuit_breaker {
            builder = builder.circuit_breaker(breaker.clone());
        }
        match &self.health_check {
            Some(Switch::On(check)) => {
                builder =
                    builder.health_check(check.path.as_str(), check.interval.0, check.timeout.0);
            }
            Some(Switch::Off) => builder = builder.without_health_check(),
            None => {}
        }
        match self.hedge {
            Some(Switch::On(hedge)) => builder = builder.hedge(hedge),
            Some(Switch::Off) => builder = builder.without_hedging(),
            None => {}
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        builder
    }

    /// Builds the client.
    pub fn build(&self) -> Result<ResilientClient, InvalidConfig> {
        self.builder().build()
    }
}

impl<'de> Deserialize<'de> for ResilientClientConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            name: String,
            endpoints: Vec<String>,
            attempt_timeout: Option<HumanDuration>,
            deadline: Option<HumanDuration>,
            max_attempts: Option<u32>,
            backoff: Option<ExponentialBackoff>,
            retry_budget: Option<RetryBudgetConfig>,
            retry_after_cap: Option<HumanDuration>,
            max_response_body: Option<usize>,
            circuit_breaker: Option<CircuitBreakerConfig>,
            health_check: Option<Switch<HealthCheckConfig>>,
            hedge: Option<Switch<HedgeConfig>>,
            seed: Option<u64>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let config = Self {
            name: raw.name,
            endpoints: raw.endpoints,
            attempt_timeout: raw.attempt_timeout.map(|d| d.0),
            deadline: raw.deadline.map(|d| d.0),
            max_attempts: raw.max_attempts,
            backoff: raw.backoff,
            retry_budget: raw.retry_budget,
            retry_after_cap: raw.retry_after_cap.map(|d| d.0),
            max_response_body: raw.max_response_body,
            circuit_breaker: raw.circuit_breaker,
            health_check: raw.health_check,
            hedge: raw.hedge,
            seed: raw.seed,
        };
        // The same checks as code gets: build it once (nothing is sent while building).
        config.build().map_err(D::Error::custom)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        name = "users"
        endpoints = ["http://127.0.0.1:8081", "http://127.0.0.1:8083"]
        attempt_timeout = "500ms"
        deadline = "2s"
        max_attempts = 2
        backoff = { base = "25ms", max = "250ms", jitter = 0.5 }
        retry_budget = { ratio = 0.1, min_per_sec = 5 }
        retry_after_cap = "500ms"
        max_response_body = 65536
        seed = 7

        [circuit_breaker]
        consecutive_failures = 3
        open_duration = "2s"

        [health_check]
        path = "/ready"
        interval = "100ms"
        timeout = "100ms"

        [hedge]
        percentile = 0.99
    "#;

    #[test]
    fn a_toml_document_sets_every_knob() {
        let config: ResilientClientConfig = toml::from_str(FULL).unwrap();
        let client = config.build().unwrap();
        assert_eq!(client.name(), "users");
        let breakers: Vec<_> = client
            .breakers()
            .iter()
            .map(|b| b.name().to_owned())
            .collect();
        assert_eq!(
            breakers,
            ["users@http://127.0.0.1:8081", "users@http://127.0.0.1:8083"]
        );
        assert_eq!(
            config.circuit_breaker,
            Some(
                CircuitBreakerConfig::builder()
                    .consecutive_failures(3)
                    .open_duration(Duration::from_secs(2))
                    .build()
                    .unwrap()
            )
        );
        assert_eq!(
            config.health_check.as_ref().map(|check| match check {
                Switch::On(check) => check.path.as_str(),
                Switch::Off => "off",
            }),
            Some("/ready")
        );
    }

    #[test]
    fn the_readme_example_reads() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("# users.toml").unwrap();
        let end = start + readme[start..].find("```").unwrap();
        let config: ResilientClientConfig = toml::from_str(&readme[start..end]).unwrap();
        assert_eq!(config.name(), "users");
    }

    #[test]
    fn a_client_that_would_not_build_does_not_read() {
        let from_builder = ResilientClient::builder("users")
            .endpoint("ftp://127.0.0.1")
            .build()
            .unwrap_err()
            .to_string();
        let error = toml::from_str::<ResilientClientConfig>(
            "name = \"users\"\nendpoints = [\"ftp://127.0.0.1\"]",
        )
        .unwrap_err();
        assert!(error.to_string().contains(&from_builder), "{error}");
    }

    #[test]
    fn a_nested_breaker_fails_with_the_breakers_message() {
        let error = toml::from_str::<ResilientClientConfig>(
            "name = \"users\"\nendpoints = [\"http://127.0.0.1:1\"]\n[circuit_breaker]\nfailure_rate = 1.5",
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the failure rate must be in (0, 1], got 1.5"),
            "{error}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = toml::from_str::<ResilientClientConfig>(
            "name = \"users\"\nendpoints = [\"http://127.0.0.1:1\"]\ntimeout = \"1s\"",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `timeout`"),
            "{error}"
        );
    }
}
