//! What a [`LeastLoaded`](super::LeastLoaded) balancer keeps about each endpoint, in atomics,
//! and the fleet-wide state of ejections. The mechanism only: every decision is a call into
//! [`estimate`](super::estimate) or [`outlier`](super::outlier).
//!
//! Written on every call: the endpoint's calls outstanding, its latency estimate, its last
//! outcome and (with outlier detection) its window of outcomes, all on the endpoint's own cache
//! lines. Locked only on a failure, to judge the endpoint against its peers, and when the
//! endpoint set changes.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::config::LeastLoadedConfig;
use super::estimate::{self, Candidate};
use crate::window::{Sample, SlidingWindow, Window, WindowCounts};

/// One endpoint's load, shared by every clone of the balancer and every call in flight to it.
#[repr(align(128))]
pub(crate) struct EndpointLoad {
    label: Arc<str>,
    pending: AtomicU32,
    /// `f32` nanoseconds of the estimate in the high half, the millisecond (since the fleet's
    /// epoch, plus one) it was last updated in the low half; zero until the first answer.
    estimate: AtomicU64,
    last_failed: AtomicBool,
    /// Whether the endpoint was not ready when last polled (its breaker open).
    unready: AtomicBool,
    /// Slow start: the nanosecond (plus one) its ramp began; zero when not ramping.
    ramp_from: AtomicU64,
    /// The nanosecond until which it is ejected; zero when it is not.
    ejected_until: AtomicU64,
    /// Slow start's saved credit, in 1/1024ths of a turn.
    credit: AtomicU32,
    /// Ejections in a row, and when the last one ended (nanoseconds).
    ejections: AtomicU32,
    returned_at: AtomicU64,
    outcomes: Option<Window>,
    fleet: Weak<Fleet>,
}

/// The state every endpoint of one balancer shares: the clock's origin, the settings, and the
/// ejections.
pub(crate) struct Fleet {
    epoch: Instant,
    pub(crate) config: LeastLoadedConfig,
    decay_nanos: f64,
    ejected: AtomicUsize,
    /// The current endpoints' loads: whom an endpoint is judged against. Its lock also makes
    /// ejection decisions one at a time, so the maximum share holds.
    members: Mutex<Vec<Arc<EndpointLoad>>>,
}

impl Fleet {
    pub(crate) fn new(config: LeastLoadedConfig) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            config,
            decay_nanos: config.decay.as_nanos() as f64,
            ejected: AtomicUsize::new(0),
            members: Mutex::new(Vec::new()),
        })
    }

    /// A new endpoint's load; `ramping` starts its slow start now.
    pub(crate) fn endpoint(
        self: &Arc<Self>,
        label: impl fmt::Display,
        ramping: bool,
    ) -> Arc<EndpointLoad> {
        let load = Arc::new(EndpointLoad {
            label: label.to_string().into(),
            pending: AtomicU32::new(0),
            estimate: AtomicU64::new(0),
            last_failed: AtomicBool::new(false),
            unready: AtomicBool::new(false),
            ramp_from: AtomicU64::new(0),
            credit: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            returned_at: AtomicU64::new(0),
            outcomes: self
                .config
                .outliers
                .map(|outliers| Window::new(SlidingWindow::Time(outliers.window))),
            fleet: Arc::downgrade(self),
        });
        if ramping {
            load.start_ramp(self.nanos(Instant::now()));
        }
        load
    }

    /// Nanoseconds since the fleet was made.
    pub(crate) fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The endpoints now in the set, after a change; ejections of endpoints that left no
    /// longer count against the maximum share.
    pub(crate) fn set_members(&self, members: Vec<Arc<EndpointLoad>>) {
        let mut current = self.members();
        let ejected = members
            .iter()
            .filter(|load| load.ejected_until.load(Ordering::Acquire) != 0)
            .count();
        *current = members;
        self.ejected.store(ejected, Ordering::Release);
    }

    /// Whether so few endpoints are healthy that ejections are ignored: one load while nothing is
    /// ejected.
    #[inline]
    pub(crate) fn panics(&self, total: usize) -> bool {
        let ejected = self.ejected.load(Ordering::Acquire);
        ejected != 0
            && self
                .config
                .outliers
                .is_some_and(|outliers| outliers.panics(ejected, total))
    }

    /// Endpoints ejected now.
    pub(crate) fn ejected(&self) -> usize {
        self.ejected.load(Ordering::Acquire)
    }

    /// Whether some endpoint would take a call now and did not fail its last one: not ejected,
    /// ready when last polled.
    pub(crate) fn has_healthy_endpoint(&self) -> bool {
        let now = self.nanos(Instant::now());
        self.members().iter().any(|load| {
            !load.last_failed.load(Ordering::Relaxed)
                && !load.unready.load(Ordering::Relaxed)
                && !load.is_ejected(now)
        })
    }

    pub(crate) fn members(&self) -> MutexGuard<'_, Vec<Arc<EndpointLoad>>> {
        // Whole vectors are swapped in, so a panic elsewhere cannot leave it half-written.
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Judges `load`, which just failed a call, against its peers, and ejects it if it stands
    /// out and the fleet can spare it.
    fn judge(&self, load: &EndpointLoad, now: u64) {
        let Some(outliers) = self.config.outliers else {
            return;
        };
        let members = self.members();
        if load.ejected_until.load(Ordering::Acquire) != 0 {
            return;
        }
        let own = load.counts(now);
        let peers = members
            .iter()
            .filter(|member| !std::ptr::eq(Arc::as_ptr(member), load))
            .map(|member| member.counts(now))
            .fold(WindowCounts::default(), |sum, counts| WindowCounts {
                calls: sum.calls + counts.calls,
                failures: sum.failures + counts.failures,
                slow: 0,
            });
        if !outliers.stands_out(own, peers) {
            return;
        }
        let ejected = self.ejected.load(Ordering::Acquire);
        if !outliers.may_eject(ejected, members.len()) {
            tracing::debug!(target: "resilience::balance", endpoint = %load.label, ejected, "not ejecting an outlier: the maximum share of endpoints is already ejected");
            return;
        }
        // Ejected again within a window of its return: the ejection grows.
        let returned = load.returned_at.load(Ordering::Relaxed);
        let in_a_row =
            returned != 0 && now.saturating_sub(returned) < duration_nanos(outliers.window);
        let nth = if in_a_row {
            load.ejections.load(Ordering::Relaxed) + 1
        } else {
            1
        };
        load.ejections.store(nth, Ordering::Relaxed);
        let ejection = outliers.ejection(nth);
        load.ejected_until.store(
            now.saturating_add(duration_nanos(ejection)).max(1),
            Ordering::Release,
        );
        self.ejected.fetch_add(1, Ordering::AcqRel);
        tracing::warn!(
            target: "resilience::balance",
            endpoint = %load.label,
            "ejecting an outlier for {ejection:?}: {} of {} calls failed over the last {:?}, against {} of {} for its peers (ejection {nth} in a row)",
            own.failures, own.calls, outliers.window, peers.failures, peers.calls,
        );
    }
}

impl EndpointLoad {
    /// How this endpoint compares now, `now` nanoseconds into the fleet's life.
    #[inline]
    pub(crate) fn candidate(&self, now: u64, fleet: &Fleet) -> Candidate {
        let pending = self.pending.load(Ordering::Relaxed);
        let estimate = self.estimate_at(now, fleet.decay_nanos);
        Candidate {
            cost: estimate::cost(estimate, pending),
            pending,
        }
    }

    /// Whether the endpoint takes a turn it won: always, unless it is ramping up under slow
    /// start, when it takes its weight's share of them.
    #[inline]
    pub(crate) fn takes_turn(&self, now: u64, fleet: &Fleet) -> bool {
        if self.ramp_from.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let weight = self.weight(now, fleet);
        const UNIT: f64 = 1024.0;
        let credit = f64::from(self.credit.load(Ordering::Relaxed)) / UNIT;
        let (take, left) = estimate::spend_turn(credit, weight);
        // Racing callers may lose a little credit: the ramp's shape, not an account.
        self.credit.store((left * UNIT) as u32, Ordering::Relaxed);
        take
    }

    /// The latency estimate `now`, faded since its last update; `None` before the first answer.
    fn estimate_at(&self, now: u64, decay: f64) -> Option<f64> {
        let (estimate, updated) = unpack(self.estimate.load(Ordering::Relaxed))?;
        let elapsed = now_millis(now).wrapping_sub(updated) as f64 * 1e6;
        Some(estimate::decayed(estimate, elapsed, decay))
    }

    /// Slow start's weight now (1 when not ramping).
    fn weight(&self, now: u64, fleet: &Fleet) -> f64 {
        let from = self.ramp_from.load(Ordering::Relaxed);
        let Some(ramp) = fleet.config.slow_start.filter(|_| from != 0) else {
            return 1.0;
        };
        let elapsed = now.saturating_sub(from - 1) as f64;
        let weight = estimate::ramp_weight(elapsed, ramp.window.as_nanos() as f64, ramp.min_weight);
        if weight >= 1.0 {
            // The ramp is over: later reads skip it.
            self.ramp_from.store(0, Ordering::Relaxed);
        }
        weight
    }

    fn start_ramp(&self, now: u64) {
        self.ramp_from
            .store(now.saturating_add(1), Ordering::Relaxed);
    }

    /// Whether the endpoint is ejected `now`; the first caller to see an ejection over brings
    /// the endpoint back, ramping.
    #[inline]
    pub(crate) fn is_ejected(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Acquire);
        if until == 0 {
            return false;
        }
        if now < until {
            return true;
        }
        if self
            .ejected_until
            .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Ejected => back: the ejection is over; it ramps up again.
            self.returned_at.store(now.max(1), Ordering::Relaxed);
            self.start_ramp(now);
            if let Some(fleet) = self.fleet.upgrade() {
                fleet.ejected.fetch_sub(1, Ordering::AcqRel);
            }
            tracing::info!(target: "resilience::balance", endpoint = %self.label, "an ejected endpoint is back, ramping up");
        }
        false
    }

    /// Notes what a poll of the endpoint's readiness said: one that was not ready and now is
    /// (its breaker closed again) ramps up.
    #[inline]
    pub(crate) fn saw_ready(&self, ready: bool, fleet: &Fleet) {
        if ready {
            if self.unready.load(Ordering::Relaxed) && self.unready.swap(false, Ordering::Relaxed) {
                self.start_ramp(fleet.nanos(Instant::now()));
            }
        } else if !self.unready.load(Ordering::Relaxed) {
            self.unready.store(true, Ordering::Relaxed);
        }
    }

    /// A call to this endpoint starts.
    #[inline]
    pub(crate) fn start(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// A call to this endpoint ended after `rtt`: `failed` is its outcome, or `None` when it
    /// was cancelled (its latency still counts: an abandoned hedge loser was slow).
    pub(crate) fn finish(&self, rtt: Duration, failed: Option<bool>, observe_latency: bool) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        let Some(fleet) = self.fleet.upgrade() else {
            return;
        };
        let now = fleet.nanos(Instant::now());
        if observe_latency {
            self.observe(rtt.as_nanos() as f64, now, fleet.decay_nanos);
        }
        let Some(failed) = failed else {
            return;
        };
        if self.last_failed.load(Ordering::Relaxed) != failed {
            self.last_failed.store(failed, Ordering::Relaxed);
        }
        if let Some(outcomes) = &self.outcomes {
            outcomes.record(
                0,
                now,
                Sample {
                    failure: failed,
                    slow: false,
                },
            );
            if failed {
                fleet.judge(self, now);
            }
        }
    }

    fn observe(&self, rtt: f64, now: u64, decay: f64) {
        let millis = now_millis(now);
        let mut current = self.estimate.load(Ordering::Relaxed);
        loop {
            let next = match unpack(current) {
                None => rtt,
                Some((estimate, updated)) => {
                    let elapsed = millis.wrapping_sub(updated) as f64 * 1e6;
                    estimate::observe(estimate, elapsed, rtt, decay)
                }
            };
            match self.estimate.compare_exchange_weak(
                current,
                pack(next, millis),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    fn counts(&self, now: u64) -> WindowCounts {
        self.outcomes
            .as_ref()
            .map(|window| window.counts(0, now))
            .unwrap_or_default()
    }

    /// What the endpoint looks like now, for an operator.
    pub(crate) fn status(&self, now: u64, fleet: &Fleet) -> EndpointStatus {
        let until = self.ejected_until.load(Ordering::Acquire);
        let counts = self.counts(now);
        EndpointStatus {
            pending: self.pending.load(Ordering::Relaxed),
            latency: self
                .estimate_at(now, fleet.decay_nanos)
                .map(|nanos| Duration::from_nanos(nanos as u64)),
            weight: self.weight(now, fleet),
            ejected_for: (until > now).then(|| Duration::from_nanos(until - now)),
            window_calls: counts.calls,
            window_failures: counts.failures,
        }
    }
}

/// One endpoint of a [`LeastLoaded`](super::LeastLoaded) balancer as it is now.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointStatus {
    /// Calls outstanding.
    pub pending: u32,
    /// The latency estimate, faded to now; `None` before the first answer.
    pub latency: Option<Duration>,
    /// Slow start's weight: below 1 while it ramps up.
    pub weight: f64,
    /// While ejected as an outlier: how long until it is back.
    pub ejected_for: Option<Duration>,
    /// Calls in the outlier window (zero without outlier detection).
    pub window_calls: u32,
    /// Failed calls in the outlier window.
    pub window_failures: u32,
}

fn now_millis(nanos: u64) -> u32 {
    ((nanos / 1_000_000) as u32).wrapping_add(1)
}

fn pack(estimate: f64, millis: u32) -> u64 {
    (u64::from((estimate as f32).to_bits()) << 32) | u64::from(millis.max(1))
}

fn unpack(word: u64) -> Option<(f64, u32)> {
    (word != 0).then(|| (f64::from(f32::from_bits((word >> 32) as u32)), word as u32))
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
