//! Moving a breaker from one state to another: the new word and deadline, the waiting gates
//! woken, the health check started on opening, and the change logged, sent to listeners and
//! subscribers, and kept as the last change.
//!
//! Transitions are rare and take the breaker's mutex, which also orders the events they emit.
//! What entering a state sets up (how long it stays open, how many probes) is `machine.rs`'s
//! answer.

use std::sync::Arc;
use std::time::SystemTime;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::events::{State, StateChange, TransitionReason};
use super::machine::AfterProbe;
use super::probe::watch_open_period;
use super::state::{Cold, Core};
use super::word::{generation_of, pack};
use crate::sync::Ordering;

impl Core {
    pub(super) fn settle_probe(&self, generation: u64, failed: bool) {
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
    pub(super) fn transition(
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

    pub(super) fn force(&self, to: State, reason: TransitionReason) {
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
        for (_, listener) in &cold.listeners {
            listener(&change);
        }
        // Nobody subscribed is fine: the event is still in the log and `last_change`.
        let _ = self.events.send(change.clone());
        cold.last_change = Some(change);
    }

    /// Starts the health check, if there is one, for the open period `generation`: a task that
    /// checks the endpoint until the check passes (Open => HalfOpen) or the period ends.
    pub(super) fn watch(&self, cold: &mut Cold, generation: u64) {
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
}
