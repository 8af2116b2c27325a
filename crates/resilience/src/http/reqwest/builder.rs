//! [`ResilientClientBuilder`]: every setting of a [`ResilientClient`], its default, and the
//! checks that turn contradictory settings into an [`InvalidConfig`] before anything runs.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;

use super::client::{Parts, ResilientClient};
use super::endpoint::DEFAULT_MAX_BODY;
use super::endpoints::{EndpointFactory, HealthSettings, parse_endpoint};
use super::stack::assemble;
use crate::backoff::ExponentialBackoff;
use crate::balance::LeastLoadedConfig;
use crate::circuit_breaker::CircuitBreakerConfig;
use crate::error::InvalidConfig;
use crate::hedge::HedgeConfig;
use crate::http::HttpRetryRules;
use crate::retry::{RetryBudget, RetryPolicy};
use crate::striped::PerStripe;

/// Builds a [`ResilientClient`]; see [`ResilientClient::builder`].
///
/// Every setting has a default; these are all of them:
///
/// | setting | default | turn it off |
/// |---|---|---|
/// | [`attempt_timeout`](Self::attempt_timeout) | 1 s, the whole exchange with its body | — |
/// | [`deadline`](Self::deadline) | 3 s for the whole request, retries included | — |
/// | [`circuit_breaker`](Self::circuit_breaker) | [`CircuitBreakerConfig::default`] per endpoint, gating the balancer | [`breakers_forced_closed`](Self::breakers_forced_closed) |
/// | [`health_check`](Self::health_check) | `GET /health` every 250 ms (250 ms each) while a breaker is open | [`without_health_check`](Self::without_health_check) |
/// | [`balancing`](Self::balancing) | [`LeastLoadedConfig::default`]: least loaded of two in turn, slow start, outlier ejection | — |
/// | [`max_attempts`](Self::max_attempts) | 3 | `max_attempts(1)` |
/// | [`backoff`](Self::backoff) | 25 ms doubling to 500 ms, 50 % jitter (only when no other endpoint is healthy) | — |
/// | [`retry_budget`](Self::retry_budget) | [`RetryBudget::default`], shared by retries and hedges | — |
/// | [`retry_after_cap`](Self::retry_after_cap) | half the deadline | — |
/// | [`hedge`](Self::hedge) | idempotent requests hedged at the 95th percentile of latency ([`HedgeConfig::default`]) | [`without_hedging`](Self::without_hedging) |
/// | [`max_response_body`](Self::max_response_body) | 4 MiB | — |
/// | [`client`](Self::client) | `reqwest::Client::new()` (rustls for https) | — |
/// | [`seed`](Self::seed) | none: jitter from the thread's random source | — |
///
/// [`build`](Self::build) refuses a configuration that cannot work as written: no endpoints,
/// an endpoint that is not an http(s) URL, a zero timeout, or an attempt timeout longer than
/// the deadline (no attempt could ever use it).
#[derive(Debug)]
pub struct ResilientClientBuilder {
    name: String,
    endpoints: Vec<String>,
    client: Option<Client>,
    attempt_timeout: Duration,
    deadline: Duration,
    breaker: CircuitBreakerConfig,
    max_attempts: u32,
    backoff: ExponentialBackoff,
    budget: Option<RetryBudget>,
    retry_after_cap: Option<Duration>,
    max_body: usize,
    health: Option<HealthSettings>,
    hedge: Option<HedgeConfig>,
    balancing: LeastLoadedConfig,
    seed: Option<u64>,
    breakers_forced_closed: bool,
}

impl ResilientClientBuilder {
    /// The defaults above, for the upstream called `name`.
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            endpoints: Vec::new(),
            client: None,
            attempt_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(3),
            breaker: CircuitBreakerConfig::default(),
            max_attempts: 3,
            backoff: ExponentialBackoff::new(Duration::from_millis(25), Duration::from_millis(500))
                .with_jitter(0.5),
            budget: None,
            retry_after_cap: None,
            max_body: DEFAULT_MAX_BODY,
            health: Some(HealthSettings {
                path: "/health".to_owned(),
                interval: Duration::from_millis(250),
                timeout: Duration::from_millis(250),
            }),
            hedge: Some(HedgeConfig::default()),
            balancing: LeastLoadedConfig::default(),
            seed: None,
            breakers_forced_closed: false,
        }
    }

    /// How the balancer weighs endpoints: latency decay, slow start, outlier detection
    /// (default [`LeastLoadedConfig::default`]).
    pub fn balancing(mut self, config: LeastLoadedConfig) -> Self {
        self.balancing = config;
        self
    }

    /// Adds one endpoint base URL.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoints.push(url.into());
        self
    }

    /// Adds endpoint base URLs.
    pub fn endpoints<I: IntoIterator<Item = S>, S: Into<String>>(mut self, urls: I) -> Self {
        self.endpoints.extend(urls.into_iter().map(Into::into));
        self
    }

    /// Sends through this `reqwest::Client` (default: `Client::new()`, with rustls for https).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The limit for one attempt: sending the request and reading the whole answer (default
    /// 1 s; at most the deadline).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The limit for a whole request, retries included (default 3 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Each endpoint's breaker (default [`CircuitBreakerConfig::default`]).
    pub fn circuit_breaker(mut self, config: CircuitBreakerConfig) -> Self {
        self.breaker = config;
        self
    }

    /// At most `n` attempts per request, the first included (default 3).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The delay before a retry when no other endpoint is healthy (a retry that can go to a
    /// healthy endpoint goes at once). A schedule that chose no jitter ([`ExponentialBackoff::new`]
    /// alone) keeps the default 50 %; pass `.with_jitter(0.0)` for none.
    pub fn backoff(mut self, backoff: ExponentialBackoff) -> Self {
        self.backoff = backoff.or_jitter(0.5);
        self
    }

    /// Limits retries and hedges, together, with `budget` (default [`RetryBudget::default`]).
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Honours a `Retry-After` of at most `cap` (default: half the deadline); it must be shorter
    /// than the deadline.
    pub fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = Some(cap);
        self
    }

    /// Reads at most `bytes` of an answer; a longer one fails its attempt with
    /// [`BodyTooLarge`](crate::http::BodyTooLarge) and is not retried (default 4 MiB).
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// While an endpoint's breaker is open, checks it with `GET path` every `interval`
    /// (jittered), allowing each check `timeout`; a 2xx lets a live request probe it at once
    /// (default: `/health`, every 250 ms, 250 ms each).
    pub fn health_check(
        mut self,
        path: impl Into<String>,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        self.health = Some(HealthSettings {
            path: path.into(),
            interval,
            timeout,
        });
        self
    }

    /// No health check: an open breaker waits out its open duration for a live probe.
    pub fn without_health_check(mut self) -> Self {
        self.health = None;
        self
    }

    /// Every endpoint's breaker, also of endpoints added later, starts forced closed: it
    /// counts but never opens (its state reads `forced_closed`) until an operator resets it.
    /// For a client behind a service mesh whose sidecar already ejects failing endpoints.
    pub fn breakers_forced_closed(mut self) -> Self {
        self.breakers_forced_closed = true;
        self
    }

    /// Hedges idempotent requests as `config` says (default [`HedgeConfig::default`]).
    pub fn hedge(mut self, config: HedgeConfig) -> Self {
        self.hedge = Some(config);
        self
    }

    /// Never hedges.
    pub fn without_hedging(mut self) -> Self {
        self.hedge = None;
        self
    }

    /// Seeds every source of jitter (retry backoff, open durations, health-check intervals),
    /// for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the configuration and builds the stack.
    pub fn build(self) -> Result<ResilientClient, InvalidConfig> {
        self.check()?;
        let bases = self
            .endpoints
            .iter()
            .map(|url| parse_endpoint(url))
            .collect::<Result<Vec<_>, _>>()?;
        let mut breaker = self.breaker;
        if let Some(seed) = self.seed {
            breaker.seed = Some(seed);
        }
        let factory = EndpointFactory {
            upstream: self.name,
            client: match self.client {
                Some(client) => client,
                None => Client::builder().build().map_err(|error| {
                    InvalidConfig::new("resilient client", format!("reqwest: {error}"))
                })?,
            },
            attempt_timeout: self.attempt_timeout,
            max_body: self.max_body,
            breaker,
            health: self.health,
            breakers_forced_closed: self.breakers_forced_closed,
        };
        let mut request_base = bases[0].clone();
        request_base.set_path("/");
        request_base.set_query(None);
        request_base.set_fragment(None);
        let endpoints = bases
            .into_iter()
            .map(|base| factory.make(base))
            .collect::<Result<Vec<_>, _>>()?;
        let mut retry = RetryPolicy::builder()
            .rules(HttpRetryRules)
            .max_attempts(self.max_attempts)
            .backoff(self.backoff)
            .deadline(self.deadline);
        if let Some(budget) = self.budget {
            retry = retry.budget(budget);
        }
        if let Some(cap) = self.retry_after_cap {
            retry = retry.retry_after_cap(cap);
        }
        if let Some(seed) = self.seed {
            retry = retry.seed(seed);
        }
        let assembled = assemble(endpoints, self.balancing, retry, self.hedge, self.deadline)?;
        let parts = Parts {
            factory,
            request_base,
            endpoints: assembled.balancer.handle(),
            policy: assembled.policy,
            hedge: assembled.hedge,
            local_stacks: PerStripe::new(),
        };
        Ok(ResilientClient {
            stack: assembled.stack,
            parts: Arc::new(parts),
        })
    }

    /// The settings that contradict each other or cannot work, named.
    fn check(&self) -> Result<(), InvalidConfig> {
        let invalid = |reason: String| Err(InvalidConfig::new("resilient client", reason));
        if self.endpoints.is_empty() {
            return invalid(format!("upstream {:?} has no endpoints", self.name));
        }
        if self.attempt_timeout.is_zero() || self.deadline.is_zero() {
            return invalid("timeouts must be greater than zero".to_owned());
        }
        if self.attempt_timeout > self.deadline {
            return invalid(format!(
                "the attempt timeout ({:?}) is longer than the deadline ({:?}), so it could never \
                 end an attempt: shorten the attempt timeout or lengthen the deadline",
                self.attempt_timeout, self.deadline
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(builder: ResilientClientBuilder) -> String {
        match builder.build() {
            Ok(_) => panic!("the configuration was accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn an_attempt_timeout_longer_than_the_deadline_is_refused_with_both_named() {
        let error = refusal(
            ResilientClient::builder("users")
                .endpoint("http://127.0.0.1:8081")
                .attempt_timeout(Duration::from_secs(1))
                .deadline(Duration::from_millis(500)),
        );
        assert!(error.contains("attempt timeout (1s)"), "{error}");
        assert!(error.contains("deadline (500ms)"), "{error}");
    }

    #[test]
    fn an_upstream_without_endpoints_is_refused_by_name() {
        let error = refusal(ResilientClient::builder("users"));
        assert!(error.contains("\"users\" has no endpoints"), "{error}");
    }

    #[test]
    fn the_defaults_build() {
        let client = ResilientClient::builder("users")
            .endpoints(["http://127.0.0.1:8081/", "http://127.0.0.1:8083"])
            .build();
        let client = client.expect("the defaults are valid");
        let urls = ["http://127.0.0.1:8081", "http://127.0.0.1:8083"];
        assert_eq!(client.endpoints(), urls);
        let pairs = client.endpoint_breakers();
        let names: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(url, breaker)| (url.as_str(), breaker.name()))
            .collect();
        assert_eq!(
            names,
            [
                (urls[0], "users@http://127.0.0.1:8081"),
                (urls[1], "users@http://127.0.0.1:8083")
            ]
        );
    }
}
