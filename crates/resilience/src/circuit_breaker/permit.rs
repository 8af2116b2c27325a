//! The right to make one call, taken when the breaker admits it and settled with its outcome.

use tokio::time::Instant;

use super::classify::Outcome;
use super::state::Core;
use crate::striped_arc::{Lanes, StripedArc};

/// The right to make one call, taken when the call is admitted.
///
/// A probe permit that is dropped before its call finished goes back to the breaker, so a
/// cancelled probe can never leave the breaker stuck half-open.
///
/// Two words, so that it travels in registers from the admission into the response future
/// instead of being built in memory and copied (a copy the processor stalls on, because it
/// reads back at once what was just written in smaller pieces).
pub(crate) struct Permit {
    /// The breaker, through the lane of the thread that admitted the call.
    pub(super) core: StripedArc<Core>,
    /// The generation it was admitted in, shifted left past the two flags below.
    tag: u64,
}

const PERMIT_SETTLED: u64 = 1;
const PERMIT_PROBE: u64 = 2;
const PERMIT_FLAGS: u32 = 2;

impl Permit {
    /// A permit for a call admitted in `generation`, holding this thread's lane of `lanes`; a
    /// probe's when `probe`.
    #[inline(always)]
    pub(super) fn new(lanes: &Lanes<Core>, generation: u64, probe: bool) -> Self {
        Self {
            core: lanes.clone_this_threads(),
            tag: (generation << PERMIT_FLAGS) | if probe { PERMIT_PROBE } else { 0 },
        }
    }

    pub(super) fn generation(&self) -> u64 {
        self.tag >> PERMIT_FLAGS
    }

    pub(super) fn is_probe(&self) -> bool {
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
            self.core.record(self, outcome, started);
        }
    }

    /// A permit dropped before its call finished: a cancelled call, or one a hedge gave up on.
    #[cold]
    #[inline(never)]
    fn unsettled(&mut self) {
        if crate::call_scope::abandon::abandoning() {
            // A hedge gave up on this call: another endpoint answered a whole exchange sooner.
            self.tag |= PERMIT_SETTLED;
            self.core.record(self, Outcome::Failure, None);
        } else if self.is_probe() {
            self.core.release_probe(self.generation());
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
