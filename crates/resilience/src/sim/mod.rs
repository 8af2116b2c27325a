//! A simulated fleet: endpoints that are slow by a distribution, fail at a rate, hang and
//! recover, under a seeded load on tokio's paused clock, and a report of what the clients saw
//! (feature `sim`).
//!
//! Whether a configuration survives a gray failure (one replica 50 ms slower, one failing a
//! third of its calls) is a question about many calls over time, not one. A fleet answers it in
//! a plain `#[tokio::test(start_paused = true)]`, in milliseconds of real time and the same way
//! every run: the same seed gives the same report. Build the stack you use in production over
//! [`Fleet::endpoints`], [`run`](Fleet::run) a [`Load`] through it, and assert on the
//! [`Report`].
//!
//! ```
//! use std::time::Duration;
//! use resilience::balance::LeastLoaded;
//! use resilience::sim::{Behaviour, Fleet, Load};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let fleet = Fleet::builder(7)
//!     .endpoint("users-1", Behaviour::healthy(Duration::from_millis(2)))
//!     .endpoint("users-2", Behaviour::healthy(Duration::from_millis(52)))
//!     .build();
//! let client = LeastLoaded::new(fleet.endpoints());
//! let report = fleet.run(Load::closed(16, Duration::from_secs(10)), client).await;
//! assert_eq!(report.failed, 0);
//! assert!(report.share("users-2") < 0.02, "{report}");
//! # }
//! ```
//!
//! Sim endpoints take any request and answer a [`SimAnswer`] naming themselves, or fail with a
//! [`SimError`]; a hung one answers nothing until its caller gives up (an attempt timeout) or
//! its behaviour changes ([`SimEndpoint::set`]).

mod report;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tower_service::Service;

pub use self::report::Report;

/// How long an endpoint takes to answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between the two.
    Uniform(Duration, Duration),
    /// Exponentially distributed with this mean, above a floor: a long tail.
    Exponential {
        /// The least an answer takes.
        floor: Duration,
        /// The mean of what it takes beyond the floor.
        mean: Duration,
    },
}

impl Latency {
    fn sample(&self, rng: &mut SmallRng) -> Duration {
        match *self {
            Self::Fixed(latency) => latency,
            Self::Uniform(low, high) if high > low => {
                let span = (high - low).as_nanos() as u64;
                low + Duration::from_nanos(rng.random_range(0..=span))
            }
            Self::Uniform(low, _) => low,
            Self::Exponential { floor, mean } => {
                let uniform: f64 = rng.random_range(f64::EPSILON..1.0);
                floor + mean.mul_f64(-uniform.ln())
            }
        }
    }
}

/// What an endpoint does with each call: answer after a [`Latency`], fail a share of calls,
/// or hang.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    latency: Latency,
    error_rate: f64,
    hung: bool,
}

impl Behaviour {
    /// Answers every call after `latency`.
    pub fn healthy(latency: Duration) -> Self {
        Self {
            latency: Latency::Fixed(latency),
            error_rate: 0.0,
            hung: false,
        }
    }

    /// Answers after a latency drawn from `latency`.
    pub fn with_latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// Fails this share of calls (0 to 1), after the same latency.
    pub fn failing(mut self, error_rate: f64) -> Self {
        self.error_rate = error_rate.clamp(0.0, 1.0);
        self
    }

    /// Accepts calls and never answers them, until its behaviour changes.
    pub fn hung() -> Self {
        Self {
            latency: Latency::Fixed(Duration::ZERO),
            error_rate: 0.0,
            hung: true,
        }
    }
}

/// A successful answer: which endpoint gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAnswer {
    /// The endpoint's name.
    pub endpoint: Arc<str>,
}

/// A failed call: which endpoint failed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("simulated failure of {endpoint}")]
pub struct SimError {
    /// The endpoint's name.
    pub endpoint: Arc<str>,
}

/// One simulated endpoint: a tower service, cheap to clone (clones are the same endpoint).
#[derive(Clone)]
pub struct SimEndpoint {
    name: Arc<str>,
    behaviour: Arc<watch::Sender<Behaviour>>,
    rng: Arc<Mutex<SmallRng>>,
}

impl SimEndpoint {
    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Changes what it does from now on; calls hung now are released and answer as the new
    /// behaviour says.
    pub fn set(&self, behaviour: Behaviour) {
        self.behaviour.send_replace(behaviour);
    }

    /// What the call arriving now will do: its latency and whether it fails, or `None` if it
    /// hangs.
    fn draw(&self) -> Option<(Duration, bool)> {
        let behaviour = *self.behaviour.borrow();
        if behaviour.hung {
            return None;
        }
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let latency = behaviour.latency.sample(&mut rng);
        let fails = behaviour.error_rate > 0.0 && rng.random_bool(behaviour.error_rate);
        Some((latency, fails))
    }
}

impl fmt::Debug for SimEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimEndpoint")
            .field("name", &self.name)
            .field("behaviour", &*self.behaviour.borrow())
            .finish()
    }
}

impl<R> Service<R> for SimEndpoint {
    type Response = SimAnswer;
    type Error = SimError;
    type Future = Pin<Box<dyn Future<Output = Result<SimAnswer, SimError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: R) -> Self::Future {
        let endpoint = self.clone();
        Box::pin(async move {
            let mut changes = endpoint.behaviour.subscribe();
            loop {
                if let Some((latency, fails)) = endpoint.draw() {
                    tokio::time::sleep(latency).await;
                    let name = endpoint.name.clone();
                    return match fails {
                        true => Err(SimError { endpoint: name }),
                        false => Ok(SimAnswer { endpoint: name }),
                    };
                }
                // Hung: wait for the behaviour to change, then draw again.
                changes.borrow_and_update();
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// A set of simulated endpoints sharing one seed.
#[derive(Debug, Clone)]
pub struct Fleet {
    endpoints: Vec<SimEndpoint>,
    seed: u64,
}

/// Builds a [`Fleet`]; see [`Fleet::builder`].
#[derive(Debug)]
pub struct FleetBuilder {
    seed: u64,
    endpoints: Vec<(String, Behaviour)>,
}

impl FleetBuilder {
    /// Adds an endpoint called `name` that behaves as `behaviour`.
    pub fn endpoint(mut self, name: impl Into<String>, behaviour: Behaviour) -> Self {
        self.endpoints.push((name.into(), behaviour));
        self
    }

    /// The fleet.
    pub fn build(self) -> Fleet {
        let endpoints = self
            .endpoints
            .into_iter()
            .enumerate()
            .map(|(index, (name, behaviour))| SimEndpoint {
                name: name.into(),
                behaviour: Arc::new(watch::Sender::new(behaviour)),
                rng: Arc::new(Mutex::new(SmallRng::seed_from_u64(
                    self.seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ))),
            })
            .collect();
        Fleet {
            endpoints,
            seed: self.seed,
        }
    }
}

impl Fleet {
    /// Starts a fleet whose every random draw (latencies, failures, the load) follows `seed`.
    pub fn builder(seed: u64) -> FleetBuilder {
        FleetBuilder {
            seed,
            endpoints: Vec::new(),
        }
    }

    /// Each endpoint with its name, to build a balancer over (wrap each in a breaker first, as
    /// in production).
    pub fn endpoints(&self) -> Vec<(String, SimEndpoint)> {
        self.endpoints
            .iter()
            .map(|endpoint| (endpoint.name.to_string(), endpoint.clone()))
            .collect()
    }

    /// The endpoint called `name`, to change its behaviour during a run.
    pub fn endpoint(&self, name: &str) -> Option<&SimEndpoint> {
        self.endpoints
            .iter()
            .find(|endpoint| &*endpoint.name == name)
    }

    /// Sends `load` through `client` and reports what its callers saw. Run it on a paused
    /// clock (`start_paused = true`): simulated time passes as fast as the calls allow.
    pub async fn run<S>(&self, load: Load, client: S) -> Report
    where
        S: Service<u64, Response = SimAnswer> + Clone + Send + 'static,
        S::Error: fmt::Display + Send,
        S::Future: Send,
    {
        report::run(load, client, self.seed).await
    }
}

/// The traffic of a run: `clients` callers each sending a request as soon as its last one is
/// answered (a closed loop, as a load generator on keep-alive connections), for `duration` of
/// simulated time. Requests are numbered from 0 (`u64`), so they can be copied for retries and
/// hedges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub(crate) clients: usize,
    pub(crate) duration: Duration,
    pub(crate) think: Duration,
}

impl Load {
    /// `clients` callers back to back for `duration`.
    pub fn closed(clients: usize, duration: Duration) -> Self {
        Self {
            clients: clients.max(1),
            duration,
            think: Duration::ZERO,
        }
    }

    /// Each caller waits `think` between an answer and its next request (a quiet client).
    pub fn with_think_time(mut self, think: Duration) -> Self {
        self.think = think;
        self
    }
}
