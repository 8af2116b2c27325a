//! Every decision of the breaker, as plain functions of its state and the time: what a call
//! meets, what a probe's outcome does, and what entering a state sets up. No atomics, no clock
//! reads, no runtime: `state.rs` reads the atomic word and the clock, asks here, and carries out
//! the answer. When to trip a closed breaker is the other pure part, in `policy.rs`.
//!
//! ```text
//!   Closed ──trip──▶ Open ──open duration elapsed / health check passed──▶ HalfOpen
//!                     ▲                                                     │ │
//!                     ├───────────── a probe failed ◀───────────────────────┘ │
//!                     └──── no probe reported back within the maximum wait ◀──┤
//!   Closed ◀────────────────────────── every probe succeeded ◀───────────────┘
//! ```

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::events::{State, TransitionReason};
use crate::backoff::ExponentialBackoff;

/// The breaker's fixed settings that its decisions depend on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Machine {
    pub(crate) open: ExponentialBackoff,
    pub(crate) half_open_wait: Duration,
    pub(crate) probes: u16,
}

/// What an arriving call meets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Admission {
    /// Closed or forced closed: the call goes through.
    Pass,
    /// Half-open with a probe permit free: the call takes it and probes.
    Probe,
    /// Rejected; while open, with how long until probing may start.
    Reject { retry_after: Option<Duration> },
    /// The state changes first; the call then asks again.
    Move(Move),
}

/// A change of state the machine asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Move {
    pub(crate) to: State,
    pub(crate) reason: TransitionReason,
}

/// What a probe's outcome does to a half-open breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AfterProbe {
    /// More probes must succeed first.
    Wait,
    /// The state changes.
    Move(Move),
}

/// What entering a state sets up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Entry {
    /// The state's deadline: while open, when probing may start; while half-open, when probes
    /// that have not reported back are given up.
    pub(crate) until: Option<Instant>,
    /// Failed probes in a row, which the open duration grows with.
    pub(crate) reopens: u32,
    /// For open: how long it stays open.
    pub(crate) open_for: Option<Duration>,
    /// Probe permits the state starts with.
    pub(crate) probes: u16,
}

impl Machine {
    /// Whether [`admit`](Self::admit) passes every call in `state` whatever else holds: the
    /// closed states, which callers check first to admit without reading anything else.
    #[inline]
    pub(crate) fn passes(state: State) -> bool {
        matches!(state, State::Closed | State::ForcedClosed)
    }

    /// Whether outcomes in `state` move the breaker: not while an operator holds it closed, where
    /// calls are counted but never trip it.
    pub(crate) fn outcomes_count(state: State) -> bool {
        state != State::ForcedClosed
    }

    /// What a call meets in `state` with `free_probes` permits left. The state's deadline
    /// `until` and the time `now` are read only when the answer depends on them: a closed
    /// breaker reads neither, which keeps its admission to one atomic load.
    #[inline]
    pub(crate) fn admit(
        &self,
        state: State,
        free_probes: u16,
        until: impl FnOnce() -> Instant,
        now: impl FnOnce() -> Instant,
    ) -> Admission {
        match state {
            State::Closed | State::ForcedClosed => Admission::Pass,
            State::ForcedOpen => Admission::Reject { retry_after: None },
            State::HalfOpen if free_probes > 0 => Admission::Probe,
            State::Open => {
                let (now, until) = (now(), until());
                if now < until {
                    Admission::Reject {
                        retry_after: Some(until - now),
                    }
                } else {
                    // Open => HalfOpen: the open duration has passed.
                    Admission::Move(Move {
                        to: State::HalfOpen,
                        reason: TransitionReason::OpenDurationElapsed,
                    })
                }
            }
            State::HalfOpen => {
                if now() < until() {
                    // Every probe is in flight; their outcomes decide.
                    Admission::Reject { retry_after: None }
                } else {
                    // HalfOpen => Open: a probe never reported back within the maximum wait.
                    Admission::Move(Move {
                        to: State::Open,
                        reason: TransitionReason::ProbeTimedOut,
                    })
                }
            }
        }
    }

    /// What a probe's outcome does, `succeeded` probes of this half-open period having
    /// succeeded before it.
    pub(crate) fn after_probe(&self, failed: bool, succeeded: u16) -> AfterProbe {
        if failed {
            // HalfOpen => Open: the service is not back yet; wait longer this time.
            return AfterProbe::Move(Move {
                to: State::Open,
                reason: TransitionReason::ProbeFailed,
            });
        }
        if succeeded.saturating_add(1) >= self.probes {
            // HalfOpen => Closed: every probe succeeded.
            return AfterProbe::Move(Move {
                to: State::Closed,
                reason: TransitionReason::ProbesSucceeded(self.probes),
            });
        }
        AfterProbe::Wait
    }

    /// What entering `to` from `from` at `now` sets up, `reopens` failed probes in a row having
    /// come before. Jitter for the open duration comes from `rng`.
    pub(crate) fn enter<R: Rng + ?Sized>(
        &self,
        from: State,
        to: State,
        reopens: u32,
        now: Instant,
        rng: &mut R,
    ) -> Entry {
        match to {
            State::Open => {
                // Each failed probe in a row grows the open duration; a fresh trip starts over.
                let reopens = if from == State::HalfOpen {
                    reopens.saturating_add(1)
                } else {
                    0
                };
                let open_for = self.open.delay(reopens, rng);
                Entry {
                    until: Some(now + open_for),
                    reopens,
                    open_for: Some(open_for),
                    probes: 0,
                }
            }
            State::HalfOpen => Entry {
                until: Some(now + self.half_open_wait),
                reopens,
                open_for: None,
                probes: self.probes,
            },
            State::Closed | State::ForcedClosed | State::ForcedOpen => Entry {
                until: None,
                reopens: 0,
                open_for: None,
                probes: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn machine(probes: u16) -> Machine {
        Machine {
            open: ExponentialBackoff::new(Duration::from_secs(5), Duration::from_secs(40)),
            half_open_wait: Duration::from_secs(10),
            probes,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn closed_admits_without_reading_the_clock() {
        for state in [State::Closed, State::ForcedClosed] {
            let admission = machine(1).admit(
                state,
                0,
                || panic!("read the deadline"),
                || panic!("read the clock"),
            );
            assert_eq!(admission, Admission::Pass);
        }
    }

    #[test]
    fn passes_is_admit_passing_whatever_the_probes_and_the_time() {
        let states = [
            State::Closed,
            State::ForcedClosed,
            State::Open,
            State::ForcedOpen,
            State::HalfOpen,
        ];
        let start = Instant::now();
        for state in states {
            for (probes, until, now) in [(0, 5, 1), (1, 5, 1), (0, 1, 5), (1, 1, 5)] {
                let admission =
                    machine(1).admit(state, probes, || start + secs(until), || start + secs(now));
                assert_eq!(
                    Machine::passes(state),
                    admission == Admission::Pass,
                    "{state:?} with {probes} probes, until {until}s, now {now}s: {admission:?}"
                );
            }
        }
    }

    #[test]
    fn open_rejects_until_its_deadline_then_moves_to_half_open() {
        let start = Instant::now();
        let until = start + secs(5);
        assert_eq!(
            machine(1).admit(State::Open, 0, || until, || start + secs(2)),
            Admission::Reject {
                retry_after: Some(secs(3))
            }
        );
        assert_eq!(
            machine(1).admit(State::Open, 0, || until, || until),
            Admission::Move(Move {
                to: State::HalfOpen,
                reason: TransitionReason::OpenDurationElapsed
            })
        );
    }

    #[test]
    fn half_open_hands_out_its_permits_then_gives_up_after_the_maximum_wait() {
        let start = Instant::now();
        let until = start + secs(10);
        let m = machine(2);
        assert_eq!(
            m.admit(State::HalfOpen, 2, || until, || start),
            Admission::Probe
        );
        assert_eq!(
            m.admit(State::HalfOpen, 1, || until, || start),
            Admission::Probe
        );
        assert_eq!(
            m.admit(State::HalfOpen, 0, || until, || start + secs(9)),
            Admission::Reject { retry_after: None }
        );
        assert_eq!(
            m.admit(State::HalfOpen, 0, || until, || until),
            Admission::Move(Move {
                to: State::Open,
                reason: TransitionReason::ProbeTimedOut
            })
        );
    }

    #[test]
    fn forced_open_rejects_with_no_promise() {
        let now = Instant::now();
        assert_eq!(
            machine(1).admit(State::ForcedOpen, 0, || now, || now),
            Admission::Reject { retry_after: None }
        );
    }

    #[test]
    fn every_probe_must_succeed_and_one_failure_reopens() {
        let m = machine(3);
        assert_eq!(m.after_probe(false, 0), AfterProbe::Wait);
        assert_eq!(m.after_probe(false, 1), AfterProbe::Wait);
        assert_eq!(
            m.after_probe(false, 2),
            AfterProbe::Move(Move {
                to: State::Closed,
                reason: TransitionReason::ProbesSucceeded(3)
            })
        );
        assert_eq!(
            m.after_probe(true, 2),
            AfterProbe::Move(Move {
                to: State::Open,
                reason: TransitionReason::ProbeFailed
            })
        );
    }

    #[test]
    fn the_open_duration_grows_with_failed_probes_and_resets_on_a_fresh_trip() {
        let m = machine(1);
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(1);
        let first = m.enter(State::Closed, State::Open, 7, now, &mut rng);
        assert_eq!((first.reopens, first.open_for), (0, Some(secs(5))));
        assert_eq!(first.until, Some(now + secs(5)));
        let mut reopens = first.reopens;
        let mut durations = Vec::new();
        for _ in 0..4 {
            let entry = m.enter(State::HalfOpen, State::Open, reopens, now, &mut rng);
            reopens = entry.reopens;
            durations.push(entry.open_for.unwrap().as_secs());
        }
        assert_eq!(durations, [10, 20, 40, 40], "doubling up to the maximum");
    }

    #[test]
    fn half_open_starts_with_its_permits_and_its_maximum_wait() {
        let m = machine(2);
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(1);
        let entry = m.enter(State::Open, State::HalfOpen, 3, now, &mut rng);
        assert_eq!(entry.probes, 2);
        assert_eq!(entry.until, Some(now + secs(10)));
        assert_eq!(entry.reopens, 3, "kept until the probes decide");
        let closed = m.enter(State::HalfOpen, State::Closed, 3, now, &mut rng);
        assert_eq!((closed.reopens, closed.until, closed.probes), (0, None, 0));
    }
}
