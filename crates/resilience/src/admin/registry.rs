//! The registry: which breakers there are (asked anew at each look, so endpoints that come and
//! go are followed), the counters sampled each time someone looks, and the watchers that want
//! state changes as they happen.
//!
//! A look ([`Registry::snapshot`]) only reads the breakers. Passing their state changes on to
//! streams needs a listener on each breaker; those are added while a stream is connected, kept
//! in step with the breakers at each of its ticks, and removed when the last stream ends.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::latency::LatencyRecorder;
use super::snapshot::{BalancingSnapshot, EndpointSnapshot, Snapshot, UpstreamSnapshot};
use crate::balance::EndpointStatus;
use crate::circuit_breaker::{CircuitBreakerHandle, ListenerId, StateChange};
use crate::hedge::HedgeMetrics;
use crate::retry::RetryMetrics;

/// Rates are over this much of the past.
pub(super) const RATE_WINDOW: Duration = Duration::from_secs(10);
/// The sparkline covers this much.
const HISTORY: Duration = Duration::from_secs(60);
/// Samples closer together than this are not kept (several watchers look every second).
const MIN_SAMPLE_GAP: Duration = Duration::from_millis(900);
/// Changes a watcher may fall behind by before it misses some (its next snapshot still shows
/// the state).
const WATCHER_BACKLOG: usize = 256;

/// One endpoint as the registry sees it: its breaker, and its latency where measured.
#[derive(Debug, Clone)]
pub struct WatchedEndpoint {
    breaker: CircuitBreakerHandle,
    endpoint: Option<String>,
    latency: Option<LatencyRecorder>,
    balancing: Option<EndpointStatus>,
}

impl WatchedEndpoint {
    /// The endpoint guarded by `breaker` (its name names the endpoint).
    pub fn new(breaker: CircuitBreakerHandle) -> Self {
        Self {
            breaker,
            endpoint: None,
            latency: None,
            balancing: None,
        }
    }

    /// Shows it as `endpoint` (a URL, an address) rather than as the breaker's name with the
    /// upstream's name and `@` taken off.
    pub fn at(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Shows what a [`LeastLoaded`](crate::balance::LeastLoaded) balancer knows of it now: calls
    /// outstanding, latency estimate, slow start, ejection.
    pub fn with_balancing(mut self, status: EndpointStatus) -> Self {
        self.balancing = Some(status);
        self
    }

    /// Shows the latency `recorder` measures (see [`LatencyLayer`](super::LatencyLayer)).
    pub fn with_latency(mut self, recorder: LatencyRecorder) -> Self {
        self.latency = Some(recorder);
        self
    }
}

impl From<CircuitBreakerHandle> for WatchedEndpoint {
    fn from(breaker: CircuitBreakerHandle) -> Self {
        Self::new(breaker)
    }
}

type Endpoints = Box<dyn Fn() -> Vec<WatchedEndpoint> + Send + Sync>;
type Counters<T> = Box<dyn Fn() -> T + Send + Sync>;

/// One upstream: a name over its endpoints, and optionally its retry and hedge counters.
pub struct Upstream {
    name: String,
    endpoints: Endpoints,
    retries: Option<Counters<RetryMetrics>>,
    hedges: Option<Counters<HedgeMetrics>>,
}

impl Upstream {
    /// The upstream `name`, whose endpoints are whatever `endpoints` returns when the registry
    /// looks (keep it cheap: it is called once per snapshot).
    pub fn new<F, E>(name: impl Into<String>, endpoints: F) -> Self
    where
        F: Fn() -> Vec<E> + Send + Sync + 'static,
        E: Into<WatchedEndpoint>,
    {
        Self {
            name: name.into(),
            endpoints: Box::new(move || endpoints().into_iter().map(Into::into).collect()),
            retries: None,
            hedges: None,
        }
    }

    /// Shows the retries counted by `metrics` (e.g. [`RetryPolicy::metrics`](crate::retry::RetryPolicy::metrics)).
    pub fn with_retries(
        mut self,
        metrics: impl Fn() -> RetryMetrics + Send + Sync + 'static,
    ) -> Self {
        self.retries = Some(Box::new(metrics));
        self
    }

    /// Shows the hedges counted by `metrics` (e.g. [`Hedge::metrics`](crate::hedge::Hedge::metrics)).
    pub fn with_hedges(
        mut self,
        metrics: impl Fn() -> HedgeMetrics + Send + Sync + 'static,
    ) -> Self {
        self.hedges = Some(Box::new(metrics));
        self
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Named breakers (and the balancers and clients they belong to), for the admin service.
///
/// Cheap to clone; clones share everything. It costs nothing while nobody looks: counters are
/// sampled when a snapshot is taken (each JSON request, and each second per stream), and state
/// changes are passed on only to streams that are connected.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    upstreams: Mutex<Vec<Arc<Upstream>>>,
    looks: Mutex<Looks>,
    watchers: Arc<Watchers>,
}

/// What the registry remembers between looks.
#[derive(Default)]
struct Looks {
    /// Per breaker name: its counters at past looks.
    endpoints: HashMap<String, Samples<EndpointCounts>>,
    /// Per upstream: retries and hedges at past looks.
    upstreams: HashMap<String, Samples<UpstreamCounts>>,
}

/// What an endpoint's rates are computed from.
#[derive(Debug, Clone, Copy)]
struct EndpointCounts {
    calls: u64,
    failures: u64,
    rejected: u64,
}

/// What an upstream's rates are computed from.
#[derive(Debug, Clone, Copy)]
struct UpstreamCounts {
    retries: u64,
    hedges: u64,
}

/// The streams that want state changes now, and the listeners that feed them.
#[derive(Default)]
pub(super) struct Watchers {
    senders: Mutex<Vec<mpsc::Sender<StateChange>>>,
    /// Breakers with a listener publishing here: each hooked once, and its handle kept so that
    /// its address is not reused while it is on the list.
    hooked: Mutex<Vec<(CircuitBreakerHandle, ListenerId)>>,
}

impl Watchers {
    fn senders(&self) -> MutexGuard<'_, Vec<mpsc::Sender<StateChange>>> {
        self.senders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn hooked(&self) -> MutexGuard<'_, Vec<(CircuitBreakerHandle, ListenerId)>> {
        self.hooked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Passes `change` to every connected watcher; runs under the breaker's transition lock, so
    /// it never waits: a watcher that is full misses this change.
    fn publish(&self, change: &StateChange) {
        let mut senders = self.senders();
        senders.retain(|sender| !sender.is_closed());
        for sender in senders.iter() {
            let _ = sender.try_send(change.clone());
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches the breakers `endpoints` returns, as the upstream `name`.
    ///
    /// ```
    /// use resilience::{CircuitBreaker, CircuitBreakerConfig};
    /// use resilience::admin::Registry;
    ///
    /// let breaker = CircuitBreaker::new((), &CircuitBreakerConfig::default()).handle();
    /// let registry = Registry::new();
    /// registry.add("payments", move || vec![breaker.clone()]);
    /// assert_eq!(registry.snapshot().upstreams[0].endpoints.len(), 1);
    /// ```
    pub fn add<F, E>(&self, name: impl Into<String>, endpoints: F)
    where
        F: Fn() -> Vec<E> + Send + Sync + 'static,
        E: Into<WatchedEndpoint>,
    {
        self.add_upstream(Upstream::new(name, endpoints));
    }

    /// Watches `upstream`.
    pub fn add_upstream(&self, upstream: Upstream) {
        self.upstreams().push(Arc::new(upstream));
    }

    /// Watches every endpoint of `client`, as they come and go, with their latency, and the
    /// client's retries and hedges.
    #[cfg(feature = "reqwest")]
    pub fn add_client(&self, client: &crate::http::ResilientClient) {
        let (endpoints, retries, hedges) = (client.clone(), client.clone(), client.clone());
        self.add_upstream(
            Upstream::new(client.name(), move || endpoints.watched_endpoints())
                .with_retries(move || retries.retry_metrics())
                .with_hedges(move || hedges.hedge_metrics()),
        );
    }

    /// The breaker called `name`, if a registered upstream has it now.
    pub fn breaker(&self, name: &str) -> Option<CircuitBreakerHandle> {
        self.breakers_now().find(|breaker| breaker.name() == name)
    }

    /// The breakers of every registered upstream, as their endpoints are now.
    fn breakers_now(&self) -> impl Iterator<Item = CircuitBreakerHandle> {
        let upstreams = self.upstreams().clone();
        upstreams
            .into_iter()
            .flat_map(|upstream| (upstream.endpoints)())
            .map(|endpoint| endpoint.breaker)
    }

    /// Everything now, with rates over the last ten seconds (from the counters sampled at
    /// earlier looks: the first look has none).
    pub fn snapshot(&self) -> Snapshot {
        let upstreams = self.upstreams().clone();
        let now = Instant::now();
        let mut looks = self.looks();
        let mut seen_endpoints = Vec::new();
        let mut snapshot = Snapshot {
            at_unix_ms: unix_ms(SystemTime::now()),
            upstreams: Vec::with_capacity(upstreams.len()),
        };
        for upstream in &upstreams {
            let retries = upstream.retries.as_ref().map(|metrics| metrics());
            let hedges = upstream.hedges.as_ref().map(|metrics| metrics());
            let counts = UpstreamCounts {
                retries: retries.map_or(0, |r| r.retries),
                hedges: hedges.map_or(0, |h| h.hedges),
            };
            let samples = looks.upstreams.entry(upstream.name.clone()).or_default();
            let mut view = UpstreamSnapshot {
                name: upstream.name.clone(),
                retries: retries.map(|r| r.retries),
                retries_per_second: retries.and_then(|_| samples.rate(now, counts, |c| c.retries)),
                hedges: hedges.map(|h| h.hedges),
                hedges_per_second: hedges.and_then(|_| samples.rate(now, counts, |c| c.hedges)),
                endpoints: Vec::new(),
            };
            samples.push(now, counts);
            for endpoint in (upstream.endpoints)() {
                let metrics = endpoint.breaker.metrics();
                let name = endpoint.breaker.name().to_owned();
                let counts = EndpointCounts {
                    calls: metrics.calls(),
                    failures: metrics.failures,
                    rejected: metrics.rejected,
                };
                let samples = looks.endpoints.entry(name.clone()).or_default();
                let latency = endpoint
                    .latency
                    .as_ref()
                    .map(|recorder| recorder.percentiles(now));
                let label = endpoint.endpoint.clone().unwrap_or_else(|| {
                    name.strip_prefix(upstream.name.as_str())
                        .and_then(|rest| rest.strip_prefix('@'))
                        .unwrap_or(&name)
                        .to_owned()
                });
                let mut endpoint_view =
                    EndpointSnapshot::new(name.clone(), label, &metrics, latency);
                endpoint_view.requests_per_second = samples.rate(now, counts, |c| c.calls);
                endpoint_view.error_rate = samples.ratio(now, counts, |c| c.failures, |c| c.calls);
                endpoint_view.rejected_per_second = samples.rate(now, counts, |c| c.rejected);
                samples.push(now, counts);
                endpoint_view.history = samples.history(|c| c.calls);
                if let Some(status) = &endpoint.balancing {
                    endpoint_view.balancing = Some(BalancingSnapshot::from(status));
                }
                view.endpoints.push(endpoint_view);
                seen_endpoints.push(name);
            }
            snapshot.upstreams.push(view);
        }
        // Forget endpoints that are gone (removed by discovery), and upstreams never removed.
        looks
            .endpoints
            .retain(|name, _| seen_endpoints.iter().any(|seen| seen == name));
        snapshot
    }

    /// A new watcher of state changes, for a stream.
    pub(super) fn watch(&self) -> mpsc::Receiver<StateChange> {
        let (sender, receiver) = mpsc::channel(WATCHER_BACKLOG);
        self.inner.watchers.senders().push(sender);
        self.follow_breakers();
        receiver
    }

    /// Keeps a listener on every breaker registered now while a watcher is connected: hooks the
    /// breakers that came since the last call, unhooks those that went, and unhooks all once no
    /// watcher is left. Streams call it when they start, at each tick and when they end.
    pub(super) fn follow_breakers(&self) {
        let watchers = &self.inner.watchers;
        let watched = {
            let mut senders = watchers.senders();
            senders.retain(|sender| !sender.is_closed());
            !senders.is_empty()
        };
        let current: Vec<CircuitBreakerHandle> = if watched {
            self.breakers_now().collect()
        } else {
            Vec::new()
        };
        let mut hooked = watchers.hooked();
        hooked.retain(|(breaker, listener)| {
            let keep = current.iter().any(|now| now.same_breaker(breaker));
            if !keep {
                breaker.remove_state_listener(*listener);
            }
            keep
        });
        for breaker in current {
            if !hooked.iter().any(|(old, _)| old.same_breaker(&breaker)) {
                let publish_to = Arc::clone(watchers);
                let listener = breaker.on_state_change(move |change| publish_to.publish(change));
                hooked.push((breaker, listener));
            }
        }
    }

    /// Breakers with a listener on them now.
    #[cfg(test)]
    pub(super) fn hooked_count(&self) -> usize {
        self.inner.watchers.hooked().len()
    }

    /// Ends every stream (each finishes its current event): call it when the server shuts
    /// down, so it can drain. Streams opened later run as usual.
    pub fn close(&self) {
        self.inner.watchers.senders().clear();
    }

    /// Streams connected (as of the last state change, which forgets closed ones).
    #[cfg(test)]
    pub(super) fn watcher_count(&self) -> usize {
        self.inner.watchers.senders().len()
    }

    fn upstreams(&self) -> MutexGuard<'_, Vec<Arc<Upstream>>> {
        self.inner
            .upstreams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn looks(&self) -> MutexGuard<'_, Looks> {
        self.inner
            .looks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("upstreams", &self.upstreams().len())
            .finish_non_exhaustive()
    }
}

pub(super) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Counters as they were at past looks, at most a minute back.
struct Samples<C> {
    ring: VecDeque<(Instant, C)>,
}

impl<C> Default for Samples<C> {
    fn default() -> Self {
        Self {
            ring: VecDeque::new(),
        }
    }
}

impl<C: Copy> Samples<C> {
    fn push(&mut self, now: Instant, counts: C) {
        if let Some((last, _)) = self.ring.back()
            && now.saturating_duration_since(*last) < MIN_SAMPLE_GAP
        {
            return;
        }
        self.ring.push_back((now, counts));
        while let Some((first, _)) = self.ring.front()
            && now.saturating_duration_since(*first) > HISTORY + MIN_SAMPLE_GAP
        {
            self.ring.pop_front();
        }
    }

    /// The sample to measure from: the newest at least [`RATE_WINDOW`] old, else the oldest;
    /// none closer than half a second to `now` (too short to call a rate).
    fn base(&self, now: Instant) -> Option<(Duration, C)> {
        let base = self
            .ring
            .iter()
            .rev()
            .find(|(at, _)| now.saturating_duration_since(*at) >= RATE_WINDOW)
            .or_else(|| self.ring.front())?;
        let elapsed = now.saturating_duration_since(base.0);
        (elapsed >= Duration::from_millis(500)).then_some((elapsed, base.1))
    }

    /// The counter `field` picks, per second since the base sample.
    fn rate(&self, now: Instant, counts: C, field: impl Fn(&C) -> u64) -> Option<f64> {
        let (elapsed, base) = self.base(now)?;
        Some(field(&counts).saturating_sub(field(&base)) as f64 / elapsed.as_secs_f64())
    }

    /// The growth of `part` over the growth of `whole` since the base sample; none when
    /// `whole` did not grow.
    fn ratio(
        &self,
        now: Instant,
        counts: C,
        part: impl Fn(&C) -> u64,
        whole: impl Fn(&C) -> u64,
    ) -> Option<f64> {
        let (_, base) = self.base(now)?;
        let grew = whole(&counts).saturating_sub(whole(&base));
        (grew > 0).then(|| part(&counts).saturating_sub(part(&base)) as f64 / grew as f64)
    }

    /// The counter `field` picks, per second between consecutive samples, oldest first.
    fn history(&self, field: impl Fn(&C) -> u64) -> Vec<f64> {
        self.ring
            .iter()
            .zip(self.ring.iter().skip(1))
            .map(|((before, old), (after, new))| {
                let seconds = after.saturating_duration_since(*before).as_secs_f64();
                field(new).saturating_sub(field(old)) as f64 / seconds.max(0.001)
            })
            .collect()
    }
}
