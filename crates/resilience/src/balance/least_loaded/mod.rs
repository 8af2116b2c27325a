//! Load-aware balancing: each call goes to the cheaper of the next two endpoints in turn, where
//! an endpoint's cost is its latency estimate times its calls outstanding.
//!
//! Round robin is blind to load. A replica 50 ms slower than its peer never fails, so no breaker
//! or outlier rule ever sees it, yet round robin hands it half the calls and every caller waits
//! on it half the time. What the client itself observes is enough to avoid it: how many calls
//! each endpoint has outstanding (Envoy's least-request, nginx `least_conn`) and how long it
//! has been taking to answer (Finagle's and linkerd's peak-EWMA).
//!
//! # The mechanism, and why
//!
//! - **Cost** = peak-EWMA latency × (calls outstanding + 1), divided by slow start's weight. The
//!   latency estimate jumps up at once on a slow answer and comes down smoothly, and fades while
//!   the endpoint gets no traffic, so a replica that was slow is tried again now and then
//!   rather than never. Outstanding calls make the cost react within one round trip, before any
//!   answer came back.
//! - **Two choices, taken in turn.** Each call compares the next two endpoints of a shared turn
//!   (tower's and linkerd's p2c draw the two at random). Taken in turn, endpoints that cost
//!   about the same (within a factor of two) are used strictly in rotation, like
//!   [`RoundRobin`](crate::balance::RoundRobin): an idle client alternates between alike replicas, and
//!   two clients do not herd onto the same one. A slow or busy endpoint loses every comparison
//!   it is part of. Comparing two endpoints, not all, keeps a call O(1) however many there are.
//! - **What the round robin guarantees stays:** an endpoint that is not ready (a
//!   breaker that admits nothing) is skipped,
//!   and when none is ready the balancer waits ([`FailFast`](super::FailFast) answers at once
//!   instead); a retry or hedge sent through the same clone goes to another endpoint while one
//!   is ready; endpoints come and go through the [handle](LeastLoaded::handle) without losing
//!   what is known of the others; nothing is allocated per call.
//! - **Slow start**: an endpoint added at run time, whose breaker is ready again, or back from
//!   ejection ramps up from a tenth of its share of the load to all of it (Envoy's
//!   `slow_start`). It holds back only load: while the other endpoint of a choice is idle, a
//!   ramping endpoint takes its turn, so a quiet client alternates at once.
//! - **Outlier detection**: an endpoint whose failure rate stands well above its peers' is
//!   ejected for a while ([`OutlierDetection`]), within a maximum share of the fleet, and below
//!   a panic threshold of healthy endpoints ejections are ignored. The breakers still guard
//!   each endpoint on their own: an endpoint that refuses connections is skipped whatever the
//!   share.
//!
//! What is a failure is the classifier's to say, as for a breaker: every `Err` by default,
//! [`HttpClassifier`] for HTTP answers (5xx).
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceExt, service_fn};
//! use resilience::balance::LeastLoaded;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), resilience::BoxError> {
//! let endpoint = |name: &'static str, delay_ms: u64| {
//!     service_fn(move |_: ()| async move {
//!         tokio::time::sleep(Duration::from_millis(delay_ms)).await;
//!         Ok::<_, std::convert::Infallible>(name)
//!     })
//! };
//! let balancer = LeastLoaded::new([("fast", endpoint("fast", 2)), ("slow", endpoint("slow", 50))]);
//! let mut seen = Vec::new();
//! for _ in 0..20 {
//!     seen.push(balancer.clone().oneshot(()).await?);
//! }
//! // Each got a first call; once the slow one's latency was known, it got no more.
//! assert_eq!(seen.iter().filter(|name| **name == "slow").count(), 1);
//! # Ok(())
//! # }
//! ```
//!
#![cfg_attr(
    feature = "http",
    doc = "[`HttpClassifier`]: crate::http::HttpClassifier"
)]
#![cfg_attr(not(feature = "http"), doc = "[`HttpClassifier`]: crate")]

mod config;
mod estimate;
pub mod future;
mod load;
mod outlier;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

pub use self::config::{LeastLoadedConfig, LeastLoadedConfigBuilder};
pub use self::load::EndpointStatus;
pub use self::outlier::{OutlierDetection, OutlierDetectionBuilder};

use self::estimate::prefer_second;
use self::future::ResponseFuture;
use self::load::{EndpointLoad, Fleet};
use super::NoAvailableEndpoint;
use super::endpoints::{EndpointSet, Entry, Snapshot};
use crate::circuit_breaker::{Classify, ErrorsAreFailures};
use crate::error::BoxError;
use crate::striped_arc::StripedArc;

/// Spreads calls by load; see the [module docs](self).
///
/// Clones share the endpoints, their loads and the turn, so a stack cloned per request still
/// balances as one. Endpoints are cloned for each request, so they should be cheap to clone.
///
/// # Panics
///
/// Like every tower service, [`call`](Service::call) must follow a `poll_ready` that returned
/// `Ready(Ok(()))`; calling it otherwise panics.
pub struct LeastLoaded<K, S, C = ErrorsAreFailures> {
    shared: StripedArc<Shared<K, S>>,
    snapshot: StripedArc<Snapshot<K, S, Arc<EndpointLoad>>>,
    classifier: C,
    selection: Selection<S>,
    /// Endpoints that were not ready, kept so their wakers stay registered.
    parked: Vec<S>,
    /// The endpoint this instance called last (its index in the snapshot of that version).
    last: Option<(u64, usize)>,
}

enum Selection<S> {
    None,
    Chosen(S, usize),
    Unavailable,
}

struct Shared<K, S> {
    cursor: Padded<AtomicUsize>,
    endpoints: EndpointSet<K, S, Arc<EndpointLoad>>,
    fleet: Arc<Fleet>,
}

/// Keeps the turn, written on every request, off the cache line of anything read often.
#[repr(align(128))]
struct Padded<T>(T);

impl<K: fmt::Display, S> LeastLoaded<K, S> {
    /// Balances over `endpoints`, each a key (an address, a name) and a service, with the
    /// default [`LeastLoadedConfig`].
    pub fn new(endpoints: impl IntoIterator<Item = (K, S)>) -> Self {
        Self::with_config(endpoints, LeastLoadedConfig::default())
    }

    /// Balances over `endpoints` as `config` says.
    pub fn with_config(
        endpoints: impl IntoIterator<Item = (K, S)>,
        config: LeastLoadedConfig,
    ) -> Self {
        let fleet = Fleet::new(config);
        let entries: Vec<_> = endpoints
            .into_iter()
            .map(|(key, service)| {
                let meta = fleet.endpoint(&key, false);
                Entry { key, service, meta }
            })
            .collect();
        fleet.set_members(entries.iter().map(|entry| entry.meta.clone()).collect());
        let endpoints = EndpointSet::new(entries);
        Self {
            snapshot: endpoints.snapshot(),
            shared: StripedArc::new(Shared {
                cursor: Padded(AtomicUsize::new(0)),
                endpoints,
                fleet,
            }),
            classifier: ErrorsAreFailures,
            selection: Selection::None,
            parked: Vec::new(),
            last: None,
        }
    }
}

impl<K, S, C> LeastLoaded<K, S, C> {
    /// Decides what counts as a failure with `classifier` (default: every `Err`), for outlier
    /// detection and for [`has_healthy_endpoint`](LeastLoadedHandle::has_healthy_endpoint).
    pub fn with_classifier<C2>(self, classifier: C2) -> LeastLoaded<K, S, C2> {
        LeastLoaded {
            shared: self.shared,
            snapshot: self.snapshot,
            classifier,
            selection: Selection::None,
            parked: Vec::new(),
            last: None,
        }
    }

    /// A handle that adds and removes endpoints while requests flow, and shows their load.
    pub fn handle(&self) -> LeastLoadedHandle<K, S> {
        LeastLoadedHandle {
            shared: self.shared.clone(),
        }
    }

    /// The number of endpoints this instance balances over.
    pub fn len(&self) -> usize {
        self.snapshot.len()
    }

    /// Whether there are no endpoints at all.
    pub fn is_empty(&self) -> bool {
        self.snapshot.len() == 0
    }
}

impl<K, S, C: Clone> Clone for LeastLoaded<K, S, C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            snapshot: self.snapshot.clone(),
            classifier: self.classifier.clone(),
            selection: Selection::None,
            parked: Vec::new(),
            // Tower's `Retry` clones the balancer right after the first call and sends the
            // retries through the clone: it must know where that call went.
            last: self.last,
        }
    }
}

impl<K: fmt::Debug, S, C> fmt::Debug for LeastLoaded<K, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeastLoaded")
            .field("endpoints", &self.snapshot.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<K, S, C, Request> Service<Request> for LeastLoaded<K, S, C>
where
    S: Service<Request> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !matches!(self.selection, Selection::None) {
            return Poll::Ready(Ok(()));
        }
        self.shared.endpoints.refresh(&mut self.snapshot);
        self.parked.clear();
        let count = self.snapshot.len();
        if count == 0 {
            self.selection = Selection::Unavailable;
            return Poll::Ready(Ok(()));
        }
        let fleet = &*self.shared.fleet;
        let now = fleet.nanos(Instant::now());
        let avoid = self
            .last
            .filter(|(version, _)| *version == self.snapshot.version)
            .map(|(_, index)| index);
        let panicking = fleet.panics(count);
        let start = self.shared.cursor.0.fetch_add(1, Ordering::Relaxed);
        let in_turn = |offset: usize| start.wrapping_add(offset) % count;
        let eligible = |index: usize| {
            Some(index) != avoid
                && (panicking || !self.snapshot.entries[index].meta.is_ejected(now))
        };
        let mut candidates = (0..count).map(in_turn).filter(|index| eligible(*index));
        let pair = (candidates.next(), candidates.next());
        let (first, second) = match pair {
            (Some(first), Some(second)) => {
                let entries = &self.snapshot.entries;
                let swap = prefer_second(
                    entries[first].meta.candidate(now, fleet),
                    entries[second].meta.candidate(now, fleet),
                );
                let (winner, other) = if swap {
                    (second, first)
                } else {
                    (first, second)
                };
                // A winner still ramping up may give its turn to the other, if the other is
                // busy: slow start spreads load, and an idle client brings none.
                let other_idle = entries[other].meta.candidate(now, fleet).pending == 0;
                match other_idle || entries[winner].meta.takes_turn(now, fleet) {
                    true => (Some(winner), Some(other)),
                    false => (Some(other), Some(winner)),
                }
            }
            pair => pair,
        };
        for index in [first, second].into_iter().flatten() {
            if self.try_select(index, cx) {
                return Poll::Ready(Ok(()));
            }
        }
        // Neither was ready: any other endpoint in turn, then ejected ones, then the one called
        // last, so that a retry goes elsewhere if it can.
        for ejected in [false, true] {
            for offset in 0..count {
                let index = in_turn(offset);
                if Some(index) == first || Some(index) == second || Some(index) == avoid {
                    continue;
                }
                let is_ejected = !panicking && self.snapshot.entries[index].meta.is_ejected(now);
                if is_ejected == ejected && self.try_select(index, cx) {
                    return Poll::Ready(Ok(()));
                }
            }
        }
        if let Some(index) = avoid {
            if self.try_select(index, cx) {
                return Poll::Ready(Ok(()));
            }
        }
        if !self.parked.is_empty() {
            return Poll::Pending;
        }
        self.selection = Selection::Unavailable;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match std::mem::replace(&mut self.selection, Selection::None) {
            Selection::Chosen(mut service, index) => {
                let load = self.snapshot.entries[index].meta.clone();
                ResponseFuture::around(load, self.classifier.clone(), || service.call(request))
            }
            Selection::Unavailable => {
                ResponseFuture::unavailable(NoAvailableEndpoint::new(self.snapshot.len()))
            }
            Selection::None => panic!("LeastLoaded::call without a successful poll_ready first"),
        }
    }
}

impl<K, S, C> LeastLoaded<K, S, C> {
    /// Takes endpoint `index` if it is ready; parks it, with its waker registered, if not.
    ///
    /// Each attempt polls a fresh clone: a gated breaker's clone that is ready holds the
    /// admission it reserved, so exactly as many callers as it has probe permits get through.
    fn try_select<Request>(&mut self, index: usize, cx: &mut Context<'_>) -> bool
    where
        S: Service<Request> + Clone,
        S::Error: Into<BoxError>,
    {
        let mut service = self.snapshot.local_services()[index].clone();
        let load = &self.snapshot.entries[index].meta;
        match service.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                load.saw_ready(true, &self.shared.fleet);
                self.selection = Selection::Chosen(service, index);
                self.last = Some((self.snapshot.version, index));
                true
            }
            Poll::Ready(Err(error)) => {
                load.saw_ready(false, &self.shared.fleet);
                let error: BoxError = error.into();
                tracing::debug!(target: "resilience::balance", %error, "skipping an endpoint whose readiness failed");
                false
            }
            Poll::Pending => {
                load.saw_ready(false, &self.shared.fleet);
                self.parked.push(service);
                false
            }
        }
    }
}

/// Adds and removes a [`LeastLoaded`] balancer's endpoints while it runs, and shows their load.
pub struct LeastLoadedHandle<K, S> {
    shared: StripedArc<Shared<K, S>>,
}

impl<K, S> Clone for LeastLoadedHandle<K, S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K, S> fmt::Debug for LeastLoadedHandle<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeastLoadedHandle").finish_non_exhaustive()
    }
}

impl<K, S> LeastLoadedHandle<K, S> {
    /// Whether some endpoint would take a call now and did not fail its last one: not ejected,
    /// ready when last polled. A [`RetryPolicy`](crate::retry::RetryPolicy) given this handle retries
    /// at once while it holds, since the retry goes there; it backs off when it does not.
    pub fn has_healthy_endpoint(&self) -> bool {
        self.shared.fleet.has_healthy_endpoint()
    }

    /// Endpoints ejected as outliers now.
    pub fn ejected(&self) -> usize {
        self.shared.fleet.ejected()
    }

    /// The settings in force.
    pub fn config(&self) -> &LeastLoadedConfig {
        &self.shared.fleet.config
    }
}

impl<K: PartialEq + Clone + fmt::Display, S: Clone> LeastLoadedHandle<K, S> {
    /// Adds an endpoint, which ramps up under slow start, or replaces the service of the
    /// endpoint with this key, which keeps its load.
    pub fn insert(&self, key: K, service: S) {
        let fleet = &self.shared.fleet;
        let meta = || fleet.endpoint(&key, true);
        self.shared.endpoints.insert(key.clone(), service, meta);
        self.publish_members();
    }

    /// Removes the endpoint with this key; returns whether there was one.
    pub fn remove(&self, key: &K) -> bool {
        let removed = self.shared.endpoints.remove(key);
        self.publish_members();
        removed
    }

    /// The keys of the current endpoints, in turn order.
    pub fn keys(&self) -> Vec<K> {
        self.shared.endpoints.keys()
    }

    /// Each endpoint's key and load now, in turn order.
    pub fn status(&self) -> Vec<(K, EndpointStatus)> {
        let fleet = &self.shared.fleet;
        let now = fleet.nanos(Instant::now());
        self.shared
            .endpoints
            .snapshot()
            .entries
            .iter()
            .map(|entry| (entry.key.clone(), entry.meta.status(now, fleet)))
            .collect()
    }

    fn publish_members(&self) {
        let snapshot = self.shared.endpoints.snapshot();
        self.shared.fleet.set_members(
            snapshot
                .entries
                .iter()
                .map(|entry| entry.meta.clone())
                .collect(),
        );
    }
}

#[cfg(test)]
mod tests;
