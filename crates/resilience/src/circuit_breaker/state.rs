//! The breaker's state machine, shared by every clone of a breaker and its handles.
//!
//! The hot path reads one atomic word holding the state, the number of free probe permits and a
//! generation. Admission in the closed state is that one load; recording a success is a load
//! (and a store only when a failure streak ends) plus a per-thread counter. Transitions are rare
//! and take a mutex, which also orders the events they emit.
//!
//! The generation changes on every transition. A call remembers the generation it was admitted
//! in, and its outcome only counts if the breaker is still in that generation: a slow call from
//! before a trip cannot close a half-open breaker, and a late probe permit cannot be returned to
//! a later half-open period. Probe permits live in the same word as the generation, so taking and
//! returning one is a single compare-and-swap that cannot race with a transition.
//!
//! A call's permit must own a reference to the breaker (tower futures are `'static`). One shared
//! `Arc` would make every core write its reference count on every call; instead each breaker has
//! a few padded lanes, each an `Arc` of its own pointing at the shared core, and a call clones
//! the lane of its thread. The counts it writes are then as private as the striped counters.

use std::fmt;
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::{Duration, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::classify::Outcome;
use super::config::CircuitBreakerConfig;
use super::error::CircuitOpen;
use super::events::{CircuitBreakerMetrics, State, StateChange, TransitionReason};
use super::machine::{Admission, AfterProbe, Machine};
use super::policy::TripPolicy;
use super::probe::HealthCheck;
use crate::striped::{STRIPES, stripe_index};
use crate::sync::{AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};
use crate::window::{Sample, Window};

type Listener = Arc<dyn Fn(&StateChange) + Send + Sync>;

pub(super) const STATE_MASK: u64 = 0xff;
const PROBE_SHIFT: u32 = 8;
const PROBE_ONE: u64 = 1 << PROBE_SHIFT;
const GENERATION_SHIFT: u32 = 24;

fn pack(generation: u64, probes: u16, state: State) -> u64 {
    (generation << GENERATION_SHIFT) | (u64::from(probes) << PROBE_SHIFT) | state.to_bits()
}

fn generation_of(word: u64) -> u64 {
    word >> GENERATION_SHIFT
}

fn probes_of(word: u64) -> u16 {
    ((word >> PROBE_SHIFT) & 0xffff) as u16
}

const SUCCESSES: usize = 0;
const FAILURES: usize = 1;
const SLOW: usize = 2;
const REJECTED: usize = 3;

/// The state of one breaker, shared by its lanes.
struct Core {
    name: Arc<str>,
    /// Itself, for the health-check task it spawns when it opens.
    me: Weak<Core>,
    word: AtomicU64,
    /// In nanoseconds since `epoch`, when the open period probing may start. Apart from
    /// `half_open_until`: a caller that read the word while open and the deadline just after a
    /// transition must not take the half-open deadline for the open one (the model check found
    /// that race: it rejected a caller for the whole half-open wait while permits were free).
    open_until: AtomicU64,
    /// In nanoseconds since `epoch`, when probes that have not reported back are given up.
    half_open_until: AtomicU64,
    consecutive_failures: AtomicU32,
    window: Option<Window>,
    epoch: Instant,
    policy: TripPolicy,
    slow_threshold: Option<Duration>,
    needs_clock: bool,
    machine: Machine,
    cold: Mutex<Cold>,
    events: broadcast::Sender<StateChange>,
}

/// What only transitions touch.
struct Cold {
    /// Failed probes in a row: how far the open duration has grown.
    reopens: u32,
    probe_successes: u16,
    rng: SmallRng,
    last_change: Option<StateChange>,
    listeners: Vec<Listener>,
    health_check: Option<HealthCheck>,
    /// Gated instances waiting for the breaker to admit calls again, woken on every change.
    waiters: Vec<Waker>,
}

/// One breaker: its core, and the per-thread lanes its permits hold.
///
/// Aligned so that these fields, read on every call, do not share a cache line with the
/// reference count of the `Arc` that services and handles hold, which clones write.
#[repr(align(128))]
pub(crate) struct Breaker {
    core: Arc<Core>,
    lanes: [Arc<Lane>; STRIPES],
}

/// What one thread's calls share: a reference to the core and their counters, alone on their
/// cache lines.
#[repr(align(128))]
struct Lane {
    core: Arc<Core>,
    counters: [AtomicU64; 4],
}

impl Lane {
    #[inline]
    fn count(&self, field: usize) {
        self.counters[field].fetch_add(1, Ordering::Relaxed);
    }
}

/// The right to make one call, taken when the call is admitted.
///
/// A probe permit that is dropped before its call finished goes back to the breaker, so a
/// cancelled probe can never leave the breaker stuck half-open.
///
/// Two words, so that it travels in registers from the admission into the response future
/// instead of being built in memory and copied (a copy the processor stalls on, because it
/// reads back at once what was just written in smaller pieces).
pub(crate) struct Permit {
    lane: Arc<Lane>,
    /// The generation it was admitted in, shifted left past the two flags below.
    tag: u64,
}

const PERMIT_SETTLED: u64 = 1;
const PERMIT_PROBE: u64 = 2;
const PERMIT_FLAGS: u32 = 2;

impl Permit {
    fn generation(&self) -> u64 {
        self.tag >> PERMIT_FLAGS
    }

    fn is_probe(&self) -> bool {
        self.tag & PERMIT_PROBE != 0
    }

    fn is_settled(&self) -> bool {
        self.tag & PERMIT_SETTLED != 0
    }

    /// Records the outcome of the call that started at `started` (when the breaker times its
    /// calls, see [`Breaker::call_started`]), once: settling again (a response future polled
    /// after it completed) or dropping the permit afterwards records nothing more.
    #[inline]
    pub(crate) fn settle(&mut self, outcome: Outcome, started: Option<Instant>) {
        if !self.is_settled() {
            self.tag |= PERMIT_SETTLED;
            self.lane.core.record(self, outcome, started);
        }
    }

    /// A permit dropped before its call finished: a cancelled call, or one a hedge gave up on.
    #[cold]
    #[inline(never)]
    fn unsettled(&mut self) {
        if crate::call_scope::abandon::abandoning() {
            // A hedge gave up on this call: another endpoint answered a whole exchange sooner.
            self.tag |= PERMIT_SETTLED;
            self.lane.core.record(self, Outcome::Failure, None);
        } else if self.is_probe() {
            self.lane.core.release_probe(self.generation());
        }
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        if !self.is_settled() {
            self.unsettled();
        }
    }
}

const EVENT_BUFFER: usize = 64;

impl Breaker {
    pub(crate) fn new(config: &CircuitBreakerConfig, name: Arc<str>) -> Self {
        let core = Arc::new_cyclic(|me| Core::new(config, name, me.clone()));
        let lanes = std::array::from_fn(|_| {
            Arc::new(Lane {
                core: Arc::clone(&core),
                counters: std::array::from_fn(|_| AtomicU64::new(0)),
            })
        });
        Self { core, lanes }
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

    /// This thread's lane.
    #[inline(always)]
    fn lane(&self) -> &Arc<Lane> {
        &self.lanes[stripe_index() % STRIPES]
    }

    /// Admits one call, or says why not (and counts the refusal).
    #[inline(always)]
    pub(crate) fn acquire(&self) -> Result<Permit, CircuitOpen> {
        self.core.acquire(self.lane(), true)
    }

    /// Admits one call for a readiness gate, which asks as often as it is polled: a refusal
    /// here is a "not now", not a rejected call, and is not counted.
    #[inline]
    pub(crate) fn acquire_quietly(&self) -> Result<Permit, CircuitOpen> {
        self.core.acquire(self.lane(), false)
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

    pub(crate) fn add_listener(&self, listener: Listener) {
        self.core.cold().listeners.push(listener);
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
        let count = |field: usize| {
            self.lanes
                .iter()
                .map(|lane| lane.counters[field].load(Ordering::Relaxed))
                .fold(0, u64::wrapping_add)
        };
        let counts = [SUCCESSES, FAILURES, SLOW, REJECTED].map(count);
        self.core.metrics(counts)
    }
}

impl Core {
    fn new(config: &CircuitBreakerConfig, name: Arc<str>, me: Weak<Core>) -> Self {
        let rng = match config.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        Self {
            name,
            me,
            word: AtomicU64::new(pack(0, 0, State::Closed)),
            open_until: AtomicU64::new(0),
            half_open_until: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            window: config.has_window().then(|| Window::new(config.window)),
            epoch: Instant::now(),
            policy: TripPolicy::new(config),
            slow_threshold: config.slow_calls.map(|slow| slow.threshold),
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
                health_check: None,
                waiters: Vec::new(),
            }),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn cold(&self) -> MutexGuard<'_, Cold> {
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

    /// Admits one call, with a permit holding `lane`, or says why not; a refusal is counted
    /// when `count` says so (a call refused, not a balancer looking).
    ///
    /// A closed breaker admits inline, in its caller: the permit is built in place instead of
    /// returned through memory, which the caller would read back before the stores landed.
    #[inline(always)]
    fn acquire(&self, lane: &Arc<Lane>, count: bool) -> Result<Permit, CircuitOpen> {
        let word = self.word.load(Ordering::Acquire);
        if Machine::passes(State::from_bits(word)) {
            return Ok(self.permit(lane, generation_of(word), false));
        }
        self.acquire_outside_closed(lane, count)
    }

    /// [`acquire`](Self::acquire) in the states that may refuse, probe or move on.
    #[inline(never)]
    fn acquire_outside_closed(&self, lane: &Arc<Lane>, count: bool) -> Result<Permit, CircuitOpen> {
        loop {
            let word = self.word.load(Ordering::Acquire);
            let generation = generation_of(word);
            let state = State::from_bits(word);
            let admission =
                self.machine
                    .admit(state, probes_of(word), || self.until(state), Instant::now);
            match admission {
                Admission::Pass => return Ok(self.permit(lane, generation, false)),
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
                        return Ok(self.permit(lane, generation, true));
                    }
                }
                Admission::Reject { retry_after } => {
                    if count {
                        lane.count(REJECTED);
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

    #[inline(always)]
    fn permit(&self, lane: &Arc<Lane>, generation: u64, probe: bool) -> Permit {
        Permit {
            lane: Arc::clone(lane),
            tag: (generation << PERMIT_FLAGS) | if probe { PERMIT_PROBE } else { 0 },
        }
    }

    fn release_probe(&self, generation: u64) {
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

    /// Records a call's outcome. A success in the closed state, with no window to keep, stays in
    /// its caller: a per-thread counter and one load.
    #[inline(always)]
    fn record(&self, permit: &Permit, outcome: Outcome, started: Option<Instant>) {
        if outcome == Outcome::Success && !permit.is_probe() && self.window.is_none() {
            permit.lane.count(SUCCESSES);
            let word = self.word.load(Ordering::Acquire);
            if generation_of(word) == permit.generation()
                && self.consecutive_failures.load(Ordering::Relaxed) != 0
            {
                self.end_failure_streak(word);
            }
            return;
        }
        self.record_in_full(permit, outcome, started);
    }

    /// A success after failures, in the generation the call was admitted in.
    #[cold]
    #[inline(never)]
    fn end_failure_streak(&self, word: u64) {
        if State::from_bits(word) != State::ForcedClosed {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// [`record`](Self::record) for failures, probes and windows.
    #[inline(never)]
    fn record_in_full(&self, permit: &Permit, outcome: Outcome, started: Option<Instant>) {
        let failure = outcome == Outcome::Failure;
        let now = (self.needs_clock).then(Instant::now);
        let slow = match (self.slow_threshold, started, now) {
            (Some(threshold), Some(started), Some(now)) => {
                now.saturating_duration_since(started) >= threshold
            }
            _ => false,
        };
        permit
            .lane
            .count(if failure { FAILURES } else { SUCCESSES });
        if slow {
            permit.lane.count(SLOW);
        }

        let word = self.word.load(Ordering::Acquire);
        if generation_of(word) != permit.generation() {
            // The breaker changed state after this call was admitted; its outcome is history.
            return;
        }
        if permit.is_probe() {
            self.settle_probe(permit.generation(), failure || slow);
            return;
        }
        if State::from_bits(word) == State::ForcedClosed {
            return;
        }

        let mut trip = None;
        if failure {
            let consecutive = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
            trip = self.policy.after_consecutive(consecutive);
        } else if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            // Written only when a streak ends, so a healthy breaker never writes this line.
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if let Some(window) = &self.window {
            let now_nanos = now.map_or(0, |now| self.nanos_since_epoch(now));
            let generation = permit.generation() as u32;
            window.record(generation, now_nanos, Sample { failure, slow });
            if trip.is_none() && (failure || slow) {
                trip = self
                    .policy
                    .after_window(window.counts(generation, now_nanos));
            }
        }
        if let Some(reason) = trip {
            // Closed => Open: a trip condition held.
            self.transition(
                permit.generation(),
                State::Closed,
                State::Open,
                TransitionReason::Tripped(reason),
                Instant::now(),
            );
        }
    }

    fn settle_probe(&self, generation: u64, failed: bool) {
        let mut cold = self.cold();
        let word = self.word.load(Ordering::Acquire);
        if generation_of(word) != generation || State::from_bits(word) != State::HalfOpen {
            return;
        }
        match self.machine.after_probe(failed, cold.probe_successes) {
            AfterProbe::Wait => cold.probe_successes += 1,
            AfterProbe::Move(change) => {
                self.apply(&mut cold, word, change.to, change.reason, Instant::now());
            }
        }
    }

    /// Moves from `expected` in `generation` to `to`, unless another thread already moved on.
    fn transition(
        &self,
        generation: u64,
        expected: State,
        to: State,
        reason: TransitionReason,
        now: Instant,
    ) {
        let mut cold = self.cold();
        let word = self.word.load(Ordering::Acquire);
        if generation_of(word) == generation && State::from_bits(word) == expected {
            self.apply(&mut cold, word, to, reason, now);
        }
    }

    fn force(&self, to: State, reason: TransitionReason) {
        let mut cold = self.cold();
        let word = self.word.load(Ordering::Acquire);
        self.apply(&mut cold, word, to, reason, Instant::now());
    }

    fn apply(&self, cold: &mut Cold, word: u64, to: State, reason: TransitionReason, now: Instant) {
        let from = State::from_bits(word);
        let entry = self
            .machine
            .enter(from, to, cold.reopens, now, &mut cold.rng);
        cold.reopens = entry.reopens;
        cold.probe_successes = 0;
        if let Some(until) = entry.until {
            let deadline = match to {
                State::HalfOpen => &self.half_open_until,
                _ => &self.open_until,
            };
            deadline.store(self.nanos_since_epoch(until), Ordering::Release);
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let generation = generation_of(word) + 1;
        self.word
            .store(pack(generation, entry.probes, to), Ordering::Release);
        for waiter in cold.waiters.drain(..) {
            waiter.wake();
        }
        if to == State::Open {
            self.watch(cold, generation);
        }
        if from == to {
            return;
        }

        let change = StateChange {
            breaker: Arc::clone(&self.name),
            from,
            to,
            reason,
            at: now,
            at_wall_clock: SystemTime::now(),
            open_for: entry.open_for,
        };
        match to {
            State::Open | State::ForcedOpen => {
                tracing::warn!(target: "resilience::circuit_breaker", "{change}")
            }
            _ => tracing::info!(target: "resilience::circuit_breaker", "{change}"),
        }
        for listener in &cold.listeners {
            listener(&change);
        }
        // Nobody subscribed is fine: the event is still in the log and `last_change`.
        let _ = self.events.send(change.clone());
        cold.last_change = Some(change);
    }

    /// Starts the health check, if there is one, for the open period `generation`: a task that
    /// checks the endpoint until the check passes (Open => HalfOpen) or the period ends.
    fn watch(&self, cold: &mut Cold, generation: u64) {
        let Some(check) = cold.health_check.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(target: "resilience::circuit_breaker", breaker = %self.name, "no tokio runtime here: the health check waits for the next open period");
            return;
        };
        let rng = SmallRng::seed_from_u64(cold.rng.random());
        runtime.spawn(watch_open_period(
            self.me.clone(),
            Arc::clone(&self.name),
            generation,
            check,
            rng,
        ));
    }

    /// Whether the breaker is still open in `generation`.
    fn is_open_in(&self, generation: u64) -> bool {
        let word = self.word.load(Ordering::Acquire);
        generation_of(word) == generation && State::from_bits(word) == State::Open
    }

    /// The metrics, given the counters summed over the lanes (in the order of their indices).
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

/// Checks the endpoint of a breaker open in `generation` until the check passes or the open
/// period ends. Holds the breaker weakly: a dropped breaker stops its check.
async fn watch_open_period(
    core: Weak<Core>,
    name: Arc<str>,
    generation: u64,
    check: HealthCheck,
    mut rng: SmallRng,
) {
    let mut last_failure: Option<String> = None;
    loop {
        tokio::time::sleep(check.next_interval(&mut rng)).await;
        let still_open = core
            .upgrade()
            .is_some_and(|core| core.is_open_in(generation));
        if !still_open {
            return;
        }
        if let Err(error) = check.run().await {
            // Each new reason is logged once (a wrong health path answers 404 for ever, and the
            // endpoint then only comes back when the open duration ends); the same reason again,
            // every interval while an endpoint is down, only at debug level.
            let reason = crate::error::chain_text(error.as_ref());
            if last_failure.as_ref() == Some(&reason) {
                tracing::debug!(target: "resilience::circuit_breaker", breaker = %name, %reason, "health check failed");
            } else {
                tracing::info!(target: "resilience::circuit_breaker", breaker = %name, %reason, "health check failed; checking again while the breaker is open");
            }
            last_failure = Some(reason);
            continue;
        }
        if let Some(core) = core.upgrade() {
            // Open => HalfOpen: the endpoint answers its health check; let a live call probe it.
            core.transition(
                generation,
                State::Open,
                State::HalfOpen,
                TransitionReason::HealthCheckPassed,
                Instant::now(),
            );
        }
        return;
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
