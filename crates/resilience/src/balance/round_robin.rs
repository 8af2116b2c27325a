//! Round robin over endpoints, skipping those whose breaker is not admitting traffic.
//!
//! Selection is pingora's: a shared turn counter and a modulo, skipping endpoints that are not
//! ready. The endpoints are the [shared endpoint set](super::endpoints), so their breaker state
//! survives any change to the set.
//!
//! An instance never sends two calls in a row to the same endpoint while another admits
//! traffic. Tower's `Retry` sends every attempt of one request through one clone of the
//! balancer, so this is what makes a retry (or a hedge) land on another endpoint, not merely
//! probably on another one: under concurrent traffic the shared turn alone could hand the retry
//! back to the endpoint that just failed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tower_service::Service;

use super::NoAvailableEndpoint;
use super::endpoints::{EndpointSet, Entry, Snapshot};
use super::future::ResponseFuture;
use crate::error::BoxError;
use crate::striped_arc::StripedArc;

/// Spreads requests over endpoints in strict turn, skipping endpoints that are not ready (a
/// breaker is not ready while it admits no calls), and waiting when none is ready. Put
/// [`FailFast`](super::FailFast) outside it to answer [`NoAvailableEndpoint`] at once instead;
/// with no endpoints at all it does so itself.
///
/// Clones share the endpoints and the turn, so a stack cloned per request still rotates.
/// Endpoints are cloned for each request, so they should be cheap to clone (a breaker, a
/// timeout and a `reqwest::Client` are each a reference count). Each thread clones from copies of
/// its own, made once per set of endpoints, so that a breaker's clones write only that thread's
/// count.
///
/// ```
/// use tower::{Service, ServiceExt, service_fn};
/// use resilience::RoundRobin;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), resilience::BoxError> {
/// let endpoint = |name: &'static str| service_fn(move |_: ()| async move { Ok::<_, std::convert::Infallible>(name) });
/// let mut balancer = RoundRobin::new([("a", endpoint("a")), ("b", endpoint("b"))]);
/// let mut seen = Vec::new();
/// for _ in 0..4 {
///     seen.push(balancer.ready().await?.call(()).await?);
/// }
/// assert_eq!(seen, ["a", "b", "a", "b"]);
///
/// // Endpoints can change while requests flow; the others keep their state.
/// balancer.handle().remove(&"a");
/// assert_eq!(balancer.ready().await?.call(()).await?, "b");
/// # Ok(())
/// # }
/// ```
///
/// # Panics
///
/// Like every tower service, [`call`](Service::call) must follow a `poll_ready` that returned
/// `Ready(Ok(()))`; calling it otherwise panics.
pub struct RoundRobin<K, S> {
    shared: StripedArc<Shared<K, S>>,
    snapshot: StripedArc<Snapshot<K, S, ()>>,
    selection: Selection<S>,
    /// Endpoints that were not ready, kept so their wakers stay registered.
    parked: Vec<S>,
    /// The endpoint this instance called last (its index in the snapshot of that version).
    last: Option<(u64, usize)>,
}

enum Selection<S> {
    None,
    Chosen(S),
    Unavailable,
}

struct Shared<K, S> {
    cursor: Padded<AtomicUsize>,
    endpoints: EndpointSet<K, S, ()>,
}

/// Keeps the cursor, written on every request, off the cache line of anything read often.
#[repr(align(128))]
struct Padded<T>(T);

impl<K, S> RoundRobin<K, S> {
    /// Balances over `endpoints`, each a key (an address, a name) and a service.
    pub fn new(endpoints: impl IntoIterator<Item = (K, S)>) -> Self {
        let entries = endpoints
            .into_iter()
            .map(|(key, service)| Entry {
                key,
                service,
                meta: (),
            })
            .collect();
        let endpoints = EndpointSet::new(entries);
        Self {
            snapshot: endpoints.snapshot(),
            shared: StripedArc::new(Shared {
                cursor: Padded(AtomicUsize::new(0)),
                endpoints,
            }),
            selection: Selection::None,
            parked: Vec::new(),
            last: None,
        }
    }

    /// A handle that adds and removes endpoints while requests flow.
    pub fn handle(&self) -> RoundRobinHandle<K, S> {
        RoundRobinHandle {
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

impl<K, S> Clone for RoundRobin<K, S> {
    #[inline(always)]
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            snapshot: self.snapshot.clone(),
            selection: Selection::None,
            parked: Vec::new(),
            // Tower's `Retry` clones the balancer right after the first call and sends the
            // retries through the clone: it must know where that call went.
            last: self.last,
        }
    }
}

impl<K: std::fmt::Debug, S> std::fmt::Debug for RoundRobin<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundRobin")
            .field("endpoints", &self.snapshot.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<K, S, Request> Service<Request> for RoundRobin<K, S>
where
    S: Service<Request> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !matches!(self.selection, Selection::None) {
            return Poll::Ready(Ok(()));
        }
        self.shared.endpoints.refresh(&mut self.snapshot);
        self.parked.clear();
        let count = self.snapshot.len();
        let avoid = self
            .last
            .filter(|(version, _)| *version == self.snapshot.version)
            .map(|(_, index)| index);
        let start = self.shared.cursor.0.fetch_add(1, Ordering::Relaxed);
        let turns = (0..count)
            .map(|offset| (offset, start.wrapping_add(offset) % count))
            .filter(|(_, index)| Some(*index) != avoid);
        // The endpoint called last comes after every other: a retry goes elsewhere if it can.
        let last_resort = avoid.map(|index| (count, index));
        for (offset, index) in turns.chain(last_resort) {
            if self.try_select(index, cx) {
                if offset > 0 && offset < count {
                    // Skipped endpoints do not get a turn back: the next request goes to the
                    // endpoint after this one.
                    self.shared.cursor.0.fetch_add(offset, Ordering::Relaxed);
                }
                self.last = Some((self.snapshot.version, index));
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
            Selection::Chosen(mut service) => ResponseFuture::around(|| service.call(request)),
            Selection::Unavailable => {
                ResponseFuture::unavailable(NoAvailableEndpoint::new(self.snapshot.len()))
            }
            Selection::None => panic!("RoundRobin::call without a successful poll_ready first"),
        }
    }
}

impl<K, S> RoundRobin<K, S> {
    /// Takes endpoint `index` if it is ready; parks it, with its waker registered, if not.
    ///
    /// Each attempt polls a fresh clone: a gated breaker's clone that is ready holds the
    /// admission it reserved, so exactly as many callers as it has probe permits get through.
    /// The clone is polled where it will stay, in the selection: polled on the stack and then
    /// moved there, its copy read back at once the admission just written in smaller pieces,
    /// which the processor stalls on.
    fn try_select<Request>(&mut self, index: usize, cx: &mut Context<'_>) -> bool
    where
        S: Service<Request> + Clone,
        S::Error: Into<BoxError>,
    {
        self.selection = Selection::Chosen(self.snapshot.local_services()[index].clone());
        let Selection::Chosen(service) = &mut self.selection else {
            unreachable!("the selection was set just above");
        };
        match service.poll_ready(cx) {
            Poll::Ready(Ok(())) => return true,
            Poll::Ready(Err(error)) => {
                let error: BoxError = error.into();
                tracing::debug!(target: "resilience::balance", %error, "skipping an endpoint whose readiness failed");
                self.selection = Selection::None;
            }
            Poll::Pending => {
                if let Selection::Chosen(service) =
                    std::mem::replace(&mut self.selection, Selection::None)
                {
                    self.parked.push(service);
                }
            }
        }
        false
    }
}

/// Adds and removes a [`RoundRobin`]'s endpoints while it runs.
pub struct RoundRobinHandle<K, S> {
    shared: StripedArc<Shared<K, S>>,
}

impl<K, S> Clone for RoundRobinHandle<K, S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K, S> std::fmt::Debug for RoundRobinHandle<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundRobinHandle").finish_non_exhaustive()
    }
}

impl<K: PartialEq + Clone, S: Clone> RoundRobinHandle<K, S> {
    /// Adds an endpoint, or replaces the service of the endpoint with this key.
    pub fn insert(&self, key: K, service: S) {
        self.shared.endpoints.insert(key, service, || ());
    }

    /// Removes the endpoint with this key; returns whether there was one.
    pub fn remove(&self, key: &K) -> bool {
        self.shared.endpoints.remove(key)
    }

    /// The keys of the current endpoints, in turn order.
    pub fn keys(&self) -> Vec<K> {
        self.shared.endpoints.keys()
    }
}
