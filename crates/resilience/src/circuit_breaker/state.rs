//! The breaker's shared state and admission: the atomic word every call reads, the deadlines
//! beside it, and whether a call may go through now.
//!
//! The hot path reads one atomic word (see `word.rs`) holding the state, the number of free probe
//! permits and a generation. Admission in the closed state is that one load; a half-open
//! breaker's probe permits are taken with one compare-and-swap of the same word, which cannot
//! race with a transition. What an arriving call meets is decided in `machine.rs`; this module
//! reads the word and the clock, asks, and carries out the answer.
//!
//! The rest of the breaker's mechanism sits beside this one, each in its own file: a call's
//! permit (`permit.rs`), recording an outcome
//! (`record.rs`), moving between states with its logs, listeners and wake-ups (`transition.rs`),
//! and the health check an open breaker runs (`probe.rs`). Every decision they carry out is in
//! `machine.rs` and `policy.rs`, plain functions tested without a runtime.

use std::fmt;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::config::CircuitBreakerConfig;
use super::error::CircuitOpen;
use super::events::{CircuitBreakerMetrics, State, StateChange, TransitionReason};
use super::machine::{Admission, Machine};
use super::permit::Permit;
use super::policy::TripPolicy;
use super::probe::HealthCheck;
use super::word::{PROBE_ONE, generation_of, pack, probes_of};
use crate::striped::StripedCounters;
use crate::striped_arc::{Lanes, WeakStriped};
use crate::sync::{AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};
use crate::window::Window;

pub(super) type Listener = Arc<dyn Fn(&StateChange) + Send + Sync>;

/// Which of a breaker's per-thread counters: successes, failures, slow calls, refused calls.
pub(super) const SUCCESSES: usize = 0;
pub(super) const FAILURES: usize = 1;
pub(super) const SLOW: usize = 2;
pub(super) const REJECTED: usize = 3;

/// The state of one breaker, shared by its lanes and its permits.
pub(super) struct Core {
    pub(super) name: Arc<str>,
    /// Itself, for the health-check task it spawns when it opens.
    pub(super) me: WeakStriped<Core>,
    /// Outcomes and refusals, counted on the calling thread's stripe.
    pub(super) counts: StripedCounters<4>,
    pub(super) word: AtomicU64,
    /// In nanoseconds since `epoch`, when the open period probing may start. Apart from
    /// `half_open_until`: a caller that read the word while open and the deadline just after a
    /// transition must not take the half-open deadline for the open one (the model check found
    /// that race: it rejected a caller for the whole half-open wait while permits were free).
    pub(super) open_until: AtomicU64,
    /// In nanoseconds since `epoch`, when probes that have not reported back are given up.
    pub(super) half_open_until: AtomicU64,
    pub(super) consecutive_failures: AtomicU32,
    pub(super) window: Option<Window>,
    pub(super) epoch: Instant,
    pub(super) policy: TripPolicy,
    pub(super) needs_clock: bool,
    pub(super) machine: Machine,
    pub(super) cold: Mutex<Cold>,
    pub(super) events: broadcast::Sender<StateChange>,
}

/// What only transitions touch.
pub(super) struct Cold {
    /// Failed probes in a row: how far the open duration has grown.
    pub(super) reopens: u32,
    pub(super) probe_successes: u16,
    pub(super) rng: SmallRng,
    pub(super) last_change: Option<StateChange>,
    /// Each with the number [`add_listener`](Breaker::add_listener) gave it, for removal.
    pub(super) listeners: Vec<(u64, Listener)>,
    pub(super) next_listener: u64,
    pub(super) health_check: Option<HealthCheck>,
    /// Gated instances waiting for the breaker to admit calls again, woken on every change.
    pub(super) waiters: Vec<Waker>,
}

/// One breaker: its core, behind one lane per thread stripe, which its permits clone.
///
/// A call's permit must own a reference to the breaker (tower futures are `'static`). One shared
/// `Arc` would make every core write its reference count on every call; the permit instead
/// clones the lane of the calling thread (see [`Lanes`]), so the count it writes is as private
/// as the striped counters.
///
/// Aligned so that these fields, read on every call, do not share a cache line with the
/// reference count of the `Arc` that services and handles hold, which clones write.
#[repr(align(128))]
pub(crate) struct Breaker {
    core: Lanes<Core>,
}

const EVENT_BUFFER: usize = 64;

impl Breaker {
    pub(crate) fn new(config: &CircuitBreakerConfig, name: Arc<str>) -> Self {
        Self {
            core: Lanes::new_cyclic(|me| Core::new(config, name, me)),
        }
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.core.name
    }

    pub(crate) fn state(&self) -> State {
        self.core.state()
    }

    /// Whether a call made now would be admitted; a hint for balancers, which take a permit
    /// (with [`acquire`](Self::acquire)) only from an endpoint that says yes.
    pub(crate) fn admits(&self) -> bool {
        self.core.admits()
    }

    /// When a call starts, for a breaker that times its calls (slow calls, a time window).
    #[inline]
    pub(crate) fn call_started(&self) -> Option<Instant> {
        self.core.needs_clock.then(crate::call_scope::clock::now)
    }

    /// Admits one call, or says why not (and counts the refusal).
    #[inline(always)]
    pub(crate) fn acquire(&self) -> Result<Permit, CircuitOpen> {
        self.core.acquire(&self.core, true)
    }

    /// Admits one call for a readiness gate, which asks as often as it is polled: a refusal
    /// here is a "not now", not a rejected call, and is not counted.
    #[inline]
    pub(crate) fn acquire_quietly(&self) -> Result<Permit, CircuitOpen> {
        self.core.acquire(&self.core, false)
    }

    /// Whether `permit` was taken in the breaker's current state (no transition since).
    #[inline]
    pub(crate) fn is_current(&self, permit: &Permit) -> bool {
        generation_of(self.core.word.load(Ordering::Acquire)) == permit.generation()
    }

    /// Probe permits not taken, for the model check.
    #[cfg(all(test, resilience_loom))]
    pub(crate) fn free_probes(&self) -> u16 {
        probes_of(self.core.word.load(Ordering::Acquire))
    }

    /// The generation, for the model check.
    #[cfg(all(test, resilience_loom))]
    pub(crate) fn generation(&self) -> u64 {
        generation_of(self.core.word.load(Ordering::Acquire))
    }

    /// Wakes `waker` at the breaker's next change of state.
    pub(crate) fn wake_on_transition(&self, waker: &Waker) {
        let mut cold = self.core.cold();
        if !cold.waiters.iter().any(|waiting| waiting.will_wake(waker)) {
            cold.waiters.push(waker.clone());
        }
    }

    /// An operator's change: from whatever state to `to`, starting a new generation.
    pub(crate) fn force(&self, to: State, reason: TransitionReason) {
        self.core.force(to, reason);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.core.events.subscribe()
    }

    /// Calls `listener` on every change from now on; the number returned removes it.
    pub(crate) fn add_listener(&self, listener: Listener) -> u64 {
        let mut cold = self.core.cold();
        let id = cold.next_listener;
        cold.next_listener += 1;
        cold.listeners.push((id, listener));
        id
    }

    /// Stops calling the listener numbered `id`; false when there is none.
    pub(crate) fn remove_listener(&self, id: u64) -> bool {
        let mut cold = self.core.cold();
        let before = cold.listeners.len();
        cold.listeners.retain(|(listener_id, _)| *listener_id != id);
        cold.listeners.len() != before
    }

    /// Checks the endpoint with `check` whenever the breaker opens from now on (and now, if it
    /// is open already).
    pub(crate) fn set_health_check(&self, check: HealthCheck) {
        let mut cold = self.core.cold();
        cold.health_check = Some(check);
        let word = self.core.word.load(Ordering::Acquire);
        if State::from_bits(word) == State::Open {
            self.core.watch(&mut cold, generation_of(word));
        }
    }

    pub(crate) fn metrics(&self) -> CircuitBreakerMetrics {
        let counts = [SUCCESSES, FAILURES, SLOW, REJECTED].map(|field| self.core.counts.sum(field));
        self.core.metrics(counts)
    }
}

impl Core {
    fn new(config: &CircuitBreakerConfig, name: Arc<str>, me: WeakStriped<Core>) -> Self {
        let rng = match config.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        Self {
            name,
            me,
            counts: StripedCounters::new(),
            word: AtomicU64::new(pack(0, 0, State::Closed)),
            open_until: AtomicU64::new(0),
            half_open_until: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            window: config.has_window().then(|| Window::new(config.window)),
            epoch: Instant::now(),
            policy: TripPolicy::new(config),
            needs_clock: config.needs_clock(),
            machine: Machine {
                open: config.open,
                half_open_wait: config.half_open_max_wait,
                probes: config.half_open_probes,
            },
            cold: Mutex::new(Cold {
                reopens: 0,
                probe_successes: 0,
                rng,
                last_change: None,
                listeners: Vec::new(),
                next_listener: 0,
                health_check: None,
                waiters: Vec::new(),
            }),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    pub(super) fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn cold(&self) -> MutexGuard<'_, Cold> {
        // A listener that panicked poisons the lock; the state it guards is still consistent
        // because every transition writes it completely before calling listeners.
        self.cold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn state(&self) -> State {
        State::from_bits(self.word.load(Ordering::Acquire))
    }

    /// The deadline of `state`, when it has one.
    fn until(&self, state: State) -> Instant {
        let until = match state {
            State::HalfOpen => &self.half_open_until,
            _ => &self.open_until,
        };
        self.epoch + Duration::from_nanos(until.load(Ordering::Acquire))
    }

    fn admits(&self) -> bool {
        let word = self.word.load(Ordering::Acquire);
        let state = State::from_bits(word);
        match self
            .machine
            .admit(state, probes_of(word), || self.until(state), Instant::now)
        {
            Admission::Pass | Admission::Probe => true,
            Admission::Reject { .. } => false,
            // Open with its time up: the next call will probe.
            Admission::Move(change) => change.to == State::HalfOpen,
        }
    }

    /// Admits one call, with a permit holding this thread's lane of `lanes`, or says why not; a
    /// refusal is counted when `count` says so (a call refused, not a balancer looking).
    ///
    /// A closed breaker admits inline, in its caller: the permit is built in place instead of
    /// returned through memory, which the caller would read back before the stores landed.
    #[inline(always)]
    fn acquire(&self, lanes: &Lanes<Core>, count: bool) -> Result<Permit, CircuitOpen> {
        let word = self.word.load(Ordering::Acquire);
        if Machine::passes(State::from_bits(word)) {
            return Ok(Permit::new(lanes, generation_of(word), false));
        }
        self.acquire_outside_closed(lanes, count)
    }

    /// [`acquire`](Self::acquire) in the states that may refuse, probe or move on.
    #[inline(never)]
    fn acquire_outside_closed(
        &self,
        lanes: &Lanes<Core>,
        count: bool,
    ) -> Result<Permit, CircuitOpen> {
        loop {
            let word = self.word.load(Ordering::Acquire);
            let generation = generation_of(word);
            let state = State::from_bits(word);
            let admission =
                self.machine
                    .admit(state, probes_of(word), || self.until(state), Instant::now);
            match admission {
                Admission::Pass => return Ok(Permit::new(lanes, generation, false)),
                Admission::Probe => {
                    // Take one permit of the word we read; another caller, or a transition,
                    // changing the word first sends us round again.
                    if self
                        .word
                        .compare_exchange_weak(
                            word,
                            word - PROBE_ONE,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
                    {
                        return Ok(Permit::new(lanes, generation, true));
                    }
                }
                Admission::Reject { retry_after } => {
                    if count {
                        self.counts.increment(REJECTED);
                    }
                    return Err(CircuitOpen::new(Arc::clone(&self.name), state, retry_after));
                }
                // Whoever gets here first makes the change; everyone then reads the word again.
                Admission::Move(change) => {
                    self.transition(generation, state, change.to, change.reason, Instant::now());
                }
            }
        }
    }

    pub(super) fn release_probe(&self, generation: u64) {
        // Under the transition lock, so that a permit going back and a transition (which reads
        // the word and stores the next one) never interleave: the loom model of a cancelled
        // probe racing an operator's reset lost the reset without it. Callers taking permits
        // still race this, hence the compare-and-swap. Only cancelled probes come here.
        let _transitions = self.cold();
        let mut word = self.word.load(Ordering::Acquire);
        while generation_of(word) == generation && State::from_bits(word) == State::HalfOpen {
            match self.word.compare_exchange_weak(
                word,
                word + PROBE_ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }

    /// Whether the breaker is still open in `generation`.
    pub(super) fn is_open_in(&self, generation: u64) -> bool {
        let word = self.word.load(Ordering::Acquire);
        generation_of(word) == generation && State::from_bits(word) == State::Open
    }

    /// The metrics, given the counters summed over the stripes (in the order of their indices).
    fn metrics(
        &self,
        [successes, failures, slow_calls, rejected]: [u64; 4],
    ) -> CircuitBreakerMetrics {
        let last_change = self.cold().last_change.clone();
        let state = self.state();
        let next_probe_in = (state == State::Open).then(|| {
            let until = self.open_until.load(Ordering::Acquire);
            Duration::from_nanos(until.saturating_sub(self.nanos_since_epoch(Instant::now())))
        });
        CircuitBreakerMetrics {
            state,
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            successes,
            failures,
            slow_calls,
            rejected,
            last_change,
            next_probe_in,
        }
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.core.name)
            .field("state", &self.core.state())
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}
