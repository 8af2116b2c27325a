//! A circuit breaker: stop calling a service that keeps failing, and find out cheaply when it is
//! back.
//!
//! The breaker is three pieces kept apart, as in linkerd2-proxy: a *gate* (admit or reject a
//! call, [`CircuitBreaker`]), a *classifier* (what counts as a failure, [`Classify`]) and a
//! *policy* (when to trip, [`CircuitBreakerConfig`]).
//!
//! ```text
//!   Closed ──trip condition──▶ Open ──open duration elapsed──▶ HalfOpen ──K probes succeed──▶ Closed
//!                               ▲                                  │
//!                               └──── a probe fails (longer) ◀─────┘
//! ```
//!
//! Closed admits every call with one atomic load and no allocation or lock. Open rejects at once
//! with [`CircuitOpen`], without calling the inner service. After the open duration the next call
//! finds the breaker half-open, where exactly [`half_open_probes`] calls are admitted however many
//! callers race, and a probe whose future is dropped gives its permit back.
//!
//! # Alone, or under a balancer
//!
//! A breaker says "not now" the way tower services do: through readiness. While it admits no
//! call, `poll_ready` is `Pending`, and it is woken when it may probe again (its open duration
//! ended, its [`HealthCheck`] passed, an operator reset it). So under a balancer (tower's `p2c`,
//! [`RoundRobin`](crate::balance::RoundRobin), [`LeastLoaded`](crate::balance::LeastLoaded), any
//! readiness-based one) an open breaker is skipped with nothing to turn on, as linkerd's
//! breakers gate their endpoints; readiness passes through any layer in between. A ready breaker
//! has reserved the admission for the next `call`, so a half-open breaker with one probe permit
//! is ready for exactly one caller.
//!
//! Waiting is the wrong answer for a caller with nowhere else to go. Over a balancer, put
//! [`FailFastLayer`](crate::balance::FailFastLayer) outside it: when no endpoint is ready it
//! answers at once with [`NoAvailableEndpoint`](crate::balance::NoAvailableEndpoint). A breaker
//! used alone is built with [`reject_when_open`](CircuitBreakerLayer::reject_when_open), as
//! below: always ready, its `call` fails at once with [`CircuitOpen`], which names the breaker
//! and when it may probe. Never build an endpoint under a balancer that way: the balancer would
//! keep choosing it while open.
//!
//! Every decision (trip, open → half-open, probe outcome, open-duration growth, the half-open
//! wait, what counts as slow) is made by plain functions of the state and the time
//! (`machine.rs`, `policy.rs`), tested without a runtime. The mechanism around them is one job
//! per file: the atomic word (`word.rs`), admission (`state.rs`), a call's permit (`permit.rs`),
//! recording an outcome (`record.rs`), moving
//! between states with its logs and listeners (`transition.rs`), and the health check
//! (`probe.rs`).
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//! use resilience::{CircuitBreakerConfig, CircuitBreakerLayer, CircuitOpen, State};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), resilience::BoxError> {
//! let config = CircuitBreakerConfig::builder()
//!     .consecutive_failures(2)
//!     .open_duration(Duration::from_secs(10))
//!     .build()?;
//! let mut service = ServiceBuilder::new()
//!     // Alone: refuse from `call` while open, rather than wait in `poll_ready`.
//!     .layer(CircuitBreakerLayer::new(config).named("flaky").reject_when_open())
//!     .service(service_fn(|_: ()| async { Err::<(), _>("boom") }));
//! let breaker = service.handle();
//!
//! for _ in 0..2 {
//!     assert!(service.ready().await?.call(()).await.is_err());
//! }
//! assert_eq!(breaker.state(), State::Open);
//! let error = service.ready().await?.call(()).await.unwrap_err();
//! assert!(error.downcast_ref::<CircuitOpen>().is_some());
//! # Ok(())
//! # }
//! ```
//!
//! [`half_open_probes`]: CircuitBreakerConfigBuilder::half_open_probes

mod classify;
mod config;
mod error;
mod events;
pub mod future;
mod gate;
mod layer;
mod machine;
mod permit;
mod policy;
mod probe;
mod record;
#[cfg(feature = "serde")]
mod serde;
mod state;
mod transition;
mod word;

use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::sync::broadcast;
use tower_service::Service;

pub use self::classify::{Classify, ErrorsAreFailures, Outcome};
pub use self::config::{CircuitBreakerConfig, CircuitBreakerConfigBuilder};
pub use self::error::CircuitOpen;
pub use self::events::{CircuitBreakerMetrics, State, StateChange, TransitionReason};
pub use self::layer::CircuitBreakerLayer;
pub use self::policy::TripReason;
pub use self::probe::HealthCheck;
pub use crate::window::SlidingWindow;

use self::future::ResponseFuture;
use self::gate::Gate;
use self::state::Breaker;
use crate::error::BoxError;
use crate::striped_arc::StripedArc;

/// A service guarded by a circuit breaker; see the [module docs](self).
///
/// Clones share one breaker. A clone does not share the admission its `poll_ready` reserved.
pub struct CircuitBreaker<S, C = ErrorsAreFailures> {
    inner: S,
    breaker: StripedArc<Breaker>,
    classifier: C,
    /// Readiness says whether a call would be admitted (the default). `None` after
    /// [`reject_when_open`](CircuitBreaker::reject_when_open): an open breaker is ready to reject.
    gate: Option<Gate>,
}

impl<S> CircuitBreaker<S> {
    /// Guards `inner` with a breaker that counts every `Err` as a failure.
    pub fn new(inner: S, config: &CircuitBreakerConfig) -> Self {
        Self::build(inner, config, ErrorsAreFailures, Arc::from("unnamed"))
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn build(
        inner: S,
        config: &CircuitBreakerConfig,
        classifier: C,
        name: Arc<str>,
    ) -> Self {
        Self {
            inner,
            breaker: StripedArc::new(Breaker::new(config, name)),
            classifier,
            gate: Some(Gate::default()),
        }
    }

    /// Checks the endpoint with `check` while the breaker is open, and lets a live call probe
    /// it as soon as the check passes instead of waiting out the open duration (see
    /// [`HealthCheck`]). Clones share the check, as they share the breaker.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Service, ServiceExt, service_fn};
    /// use resilience::{CircuitBreaker, CircuitBreakerConfig, State};
    /// use resilience::circuit_breaker::HealthCheck;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), resilience::BoxError> {
    /// let config = CircuitBreakerConfig::builder()
    ///     .consecutive_failures(1)
    ///     .open_duration(Duration::from_secs(30))
    ///     .build()?;
    /// let flaky = service_fn(|_: ()| async { Err::<(), _>("connection refused") });
    /// let mut service = CircuitBreaker::new(flaky, &config)
    ///     .with_health_check(HealthCheck::new(|| async { Ok::<(), std::io::Error>(()) }))?;
    /// let breaker = service.handle();
    ///
    /// assert!(service.ready().await?.call(()).await.is_err());
    /// assert_eq!(breaker.state(), State::Open);
    /// // The endpoint answers its check well before the 30 s are up.
    /// tokio::time::sleep(Duration::from_millis(300)).await;
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`](crate::error::InvalidConfig) when the check's schedule cannot work.
    pub fn with_health_check(
        self,
        check: HealthCheck,
    ) -> Result<Self, crate::error::InvalidConfig> {
        check.validate()?;
        self.breaker.set_health_check(check);
        Ok(self)
    }

    /// Answers readiness whatever the state, and fails `call` with [`CircuitOpen`] at once while
    /// the breaker admits no call, instead of the default: `poll_ready` is `Pending` until the
    /// breaker admits a call, which is what lets a balancer route around it.
    ///
    /// For a breaker used alone whose callers want the refusal as an error from `call` rather
    /// than as backpressure. Under a balancer, a breaker built this way is chosen while open and
    /// its calls fail although other endpoints are healthy; so is one behind a `FailFast`, which
    /// then never answers for it. See the [module docs](self).
    pub fn reject_when_open(mut self) -> Self {
        self.gate = None;
        self
    }

    /// A handle on this breaker, for operators and status pages.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            breaker: self.breaker.clone(),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
            gate: self.gate.as_ref().map(|_| Gate::default()),
        }
    }
}

impl<S: std::fmt::Debug, C> std::fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, C, Request> Service<Request> for CircuitBreaker<S, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // By default a breaker is not ready until it admits a call. Built with
        // `reject_when_open`, an open one is "ready to reject": its caller learns at once, from
        // `call`, that the circuit is open.
        if let Some(gate) = &mut self.gate {
            ready!(gate.poll_admit(&self.breaker, cx));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let permit = match self.gate.as_mut().and_then(Gate::take) {
            Some(permit) => Ok(permit),
            None => self.breaker.acquire(),
        };
        match permit {
            Ok(permit) => ResponseFuture::around(
                permit,
                self.breaker.call_started(),
                self.classifier.clone(),
                || self.inner.call(request),
            ),
            Err(open) => ResponseFuture::rejected(open),
        }
    }
}

/// A cloneable handle on one breaker: its state and counters, operator controls, and its state
/// changes as they happen.
#[derive(Clone, Debug)]
pub struct CircuitBreakerHandle {
    breaker: StripedArc<Breaker>,
}

/// Names a listener added with [`CircuitBreakerHandle::on_state_change`], to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

impl CircuitBreakerHandle {
    /// The breaker's name.
    pub fn name(&self) -> &str {
        self.breaker.name()
    }

    /// The current state. An open breaker whose open duration has passed still reports
    /// [`State::Open`] until a call arrives to probe it.
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// Whether a call made now would be admitted.
    pub fn admits(&self) -> bool {
        self.breaker.admits()
    }

    /// The state, counters and last change.
    pub fn metrics(&self) -> CircuitBreakerMetrics {
        self.breaker.metrics()
    }

    /// Rejects every call until [`force_closed`](Self::force_closed) or [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.breaker
            .force(State::ForcedOpen, TransitionReason::ForcedOpen);
    }

    /// Admits every call and never trips, until [`force_open`](Self::force_open) or
    /// [`reset`](Self::reset).
    pub fn force_closed(&self) {
        self.breaker
            .force(State::ForcedClosed, TransitionReason::ForcedClosed);
    }

    /// Closes the breaker and forgets past failures.
    pub fn reset(&self) {
        self.breaker.force(State::Closed, TransitionReason::Reset);
    }

    /// Every state change from now on. A receiver that falls more than 64 changes behind
    /// skips the oldest (and is told so by `RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.breaker.subscribe()
    }

    /// Calls `listener` on every state change from now on, in order, on the thread that made
    /// the change, until [`remove_state_listener`](Self::remove_state_listener) is given the id
    /// returned. Keep it quick: it runs while the breaker holds its transition lock.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use resilience::{CircuitBreaker, CircuitBreakerConfig, State};
    ///
    /// let breaker = CircuitBreaker::new((), &CircuitBreakerConfig::default()).handle();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let listener = breaker.on_state_change(move |change| log.lock().unwrap().push(change.to));
    /// breaker.force_open();
    /// assert!(breaker.remove_state_listener(listener));
    /// breaker.reset();
    /// assert_eq!(*seen.lock().unwrap(), [State::ForcedOpen]);
    /// ```
    pub fn on_state_change(
        &self,
        listener: impl Fn(&StateChange) + Send + Sync + 'static,
    ) -> ListenerId {
        ListenerId(self.breaker.add_listener(Arc::new(listener)))
    }

    /// Stops calling the listener [`on_state_change`](Self::on_state_change) returned `id` for;
    /// false when it was removed already.
    pub fn remove_state_listener(&self, id: ListenerId) -> bool {
        self.breaker.remove_listener(id.0)
    }

    /// Whether both handles are on the same breaker (names need not be unique).
    #[cfg(feature = "admin")]
    pub(crate) fn same_breaker(&self, other: &Self) -> bool {
        StripedArc::ptr_eq(&self.breaker, &other.breaker)
    }
}

#[cfg(all(test, resilience_loom))]
mod loom_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;
