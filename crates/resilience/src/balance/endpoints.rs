//! The endpoint set every balancer of this crate reads: an immutable snapshot behind a version
//! number, replaced whole when endpoints come and go.
//!
//! Every clone of a balancer reads its snapshot without a lock; a change publishes a new
//! snapshot and bumps the version, and clones pick it up at their next `poll_ready`. Endpoints
//! that stay are the same service values (clones sharing one breaker) with the same per-endpoint
//! state `M` (a load estimate), so nothing about them is lost when the set changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::striped::PerStripe;
use crate::striped_arc::StripedArc;

/// One endpoint: its key, its service and what the balancer keeps about it.
pub(crate) struct Entry<K, S, M> {
    pub(crate) key: K,
    pub(crate) service: S,
    pub(crate) meta: M,
}

impl<K: Clone, S: Clone, M: Clone> Clone for Entry<K, S, M> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            service: self.service.clone(),
            meta: self.meta.clone(),
        }
    }
}

/// The endpoints at one version.
pub(crate) struct Snapshot<K, S, M> {
    pub(crate) version: u64,
    pub(crate) entries: Vec<Entry<K, S, M>>,
    /// Each thread stripe's own clones of the services, made there on first use. A request
    /// clones the endpoint it calls; cloned from these, an endpoint whose clones count per
    /// thread (a breaker's) writes only this thread's count, where a clone of the shared
    /// original would have to find this thread's count first, on every request.
    local: PerStripe<Vec<S>>,
}

impl<K, S, M> Snapshot<K, S, M> {
    fn new(version: u64, entries: Vec<Entry<K, S, M>>) -> Self {
        Self {
            version,
            entries,
            local: PerStripe::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|entry| &entry.key)
    }
}

impl<K, S: Clone, M> Snapshot<K, S, M> {
    /// This thread's clones of the services, in the same order as the entries.
    #[inline]
    pub(crate) fn local_services(&self) -> &[S] {
        self.local.get_or_init(|| {
            self.entries
                .iter()
                .map(|entry| entry.service.clone())
                .collect()
        })
    }
}

/// The current snapshot, shared by every clone of a balancer and its handles.
pub(crate) struct EndpointSet<K, S, M> {
    version: AtomicU64,
    current: Mutex<StripedArc<Snapshot<K, S, M>>>,
}

impl<K, S, M> EndpointSet<K, S, M> {
    pub(crate) fn new(entries: Vec<Entry<K, S, M>>) -> Self {
        Self {
            version: AtomicU64::new(0),
            current: Mutex::new(StripedArc::new(Snapshot::new(0, entries))),
        }
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> StripedArc<Snapshot<K, S, M>> {
        self.current().clone()
    }

    /// `snapshot` itself if it is still current, else the current one: one load when nothing
    /// changed.
    #[inline]
    pub(crate) fn refresh(&self, snapshot: &mut StripedArc<Snapshot<K, S, M>>) {
        if self.version.load(Ordering::Acquire) != snapshot.version {
            *snapshot = self.current().clone();
        }
    }

    fn current(&self) -> MutexGuard<'_, StripedArc<Snapshot<K, S, M>>> {
        // Only updates hold the lock, and they leave the snapshot whole even if they panic.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: PartialEq + Clone, S: Clone, M: Clone> EndpointSet<K, S, M> {
    /// Adds an endpoint, or replaces the key and service of the endpoint with an equal key
    /// (keeping its state); `meta` makes the state of a new one.
    pub(crate) fn insert(&self, key: K, service: S, meta: impl FnOnce() -> M) {
        self.update(
            |entries| match entries.iter_mut().find(|entry| entry.key == key) {
                Some(existing) => {
                    existing.key = key;
                    existing.service = service;
                }
                None => entries.push(Entry {
                    key,
                    service,
                    meta: meta(),
                }),
            },
        );
    }

    /// Removes the endpoint with this key; returns whether there was one.
    pub(crate) fn remove(&self, key: &K) -> bool {
        let mut removed = false;
        self.update(|entries| {
            let before = entries.len();
            entries.retain(|entry| entry.key != *key);
            removed = entries.len() != before;
        });
        removed
    }

    /// The keys of the current endpoints, in turn order.
    pub(crate) fn keys(&self) -> Vec<K> {
        self.current().keys().cloned().collect()
    }

    fn update(&self, change: impl FnOnce(&mut Vec<Entry<K, S, M>>)) {
        let mut current = self.current();
        let mut entries = current.entries.clone();
        change(&mut entries);
        let version = current.version + 1;
        *current = StripedArc::new(Snapshot::new(version, entries));
        self.version.store(version, Ordering::Release);
    }
}
