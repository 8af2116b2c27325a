//! The breaker's state in one atomic word: the state, the probe permits still free, and a
//! generation that changes on every transition.
//!
//! A call remembers the generation it was admitted in, and its outcome only counts if the
//! breaker is still in that generation: a slow call from before a trip cannot close a half-open
//! breaker, and a late probe permit cannot be returned to a later half-open period. The permits
//! live in the same word as the generation, so taking or returning one is a single
//! compare-and-swap that cannot race with a transition.

use super::events::State;

/// The bits of the word that hold the [`State`].
pub(super) const STATE_MASK: u64 = 0xff;
const PROBE_SHIFT: u32 = 8;
/// One free probe permit, to add to or subtract from a word.
pub(super) const PROBE_ONE: u64 = 1 << PROBE_SHIFT;
const GENERATION_SHIFT: u32 = 24;

pub(super) fn pack(generation: u64, probes: u16, state: State) -> u64 {
    (generation << GENERATION_SHIFT) | (u64::from(probes) << PROBE_SHIFT) | state.to_bits()
}

pub(super) fn generation_of(word: u64) -> u64 {
    word >> GENERATION_SHIFT
}

pub(super) fn probes_of(word: u64) -> u16 {
    ((word >> PROBE_SHIFT) & 0xffff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_reads_back_as_written() {
        let word = pack(7, 3, State::HalfOpen);
        assert_eq!(generation_of(word), 7);
        assert_eq!(probes_of(word), 3);
        assert_eq!(State::from_bits(word), State::HalfOpen);
        assert_eq!(
            probes_of(word - PROBE_ONE),
            2,
            "taking a permit leaves the rest alone"
        );
        assert_eq!(generation_of(word - PROBE_ONE), 7);
    }
}
