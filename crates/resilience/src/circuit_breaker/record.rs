//! Recording a call's outcome: the per-thread counts, the failure streak, the window, and the
//! trip that follows when the policy says so.
//!
//! The common case, a success in the closed state with no window to keep, stays in its caller:
//! one per-thread counter and one load. Whether a call was slow and whether the outcome trips
//! the breaker are `policy.rs`'s answers; whether outcomes count at all in a state is
//! `machine.rs`'s.

use tokio::time::Instant;

use super::classify::Outcome;
use super::events::{State, TransitionReason};
use super::machine::Machine;
use super::permit::Permit;
use super::state::{Core, FAILURES, SLOW, SUCCESSES};
use super::word::generation_of;
use crate::sync::Ordering;
use crate::window::Sample;

impl Core {
    /// Records a call's outcome. A success in the closed state, with no window to keep, stays in
    /// its caller: a per-thread counter and one load.
    #[inline(always)]
    pub(super) fn record(&self, permit: &Permit, outcome: Outcome, started: Option<Instant>) {
        if outcome == Outcome::Success && !permit.is_probe() && self.window.is_none() {
            self.counts.increment(SUCCESSES);
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
        if Machine::outcomes_count(State::from_bits(word)) {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// [`record`](Self::record) for failures, probes and windows.
    #[inline(never)]
    fn record_in_full(&self, permit: &Permit, outcome: Outcome, started: Option<Instant>) {
        let failure = outcome == Outcome::Failure;
        let now = (self.needs_clock).then(Instant::now);
        let took = started
            .zip(now)
            .map(|(started, now)| now.saturating_duration_since(started));
        let slow = self.policy.is_slow(took);
        self.counts
            .increment(if failure { FAILURES } else { SUCCESSES });
        if slow {
            self.counts.increment(SLOW);
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
        if !Machine::outcomes_count(State::from_bits(word)) {
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
}
