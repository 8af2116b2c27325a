//! The decisions of load-aware balancing, as plain functions of numbers: the peak-EWMA latency
//! estimate, an endpoint's cost, which of two endpoints to take, and slow start's weight.
//!
//! No atomics and no clock here: callers pass nanoseconds, so every rule is tested with plain
//! `#[test]`s.

/// Two costs within this factor of each other are alike, and the endpoint whose turn it is
/// takes the call. Below it, jitter of a few hundred microseconds between two healthy replicas
/// would decide every idle call; above it, one replica is slower or busier in a way a caller
/// notices.
pub(crate) const ALIKE: f64 = 2.0;

/// Nor, when neither endpoint has a call outstanding, are two latencies less than this apart
/// (20 ms, in nanoseconds) worth breaking the rotation for. A peak-EWMA estimate keeps a first
/// answer's connection handshake on a busy host for seconds, and an idle client that stopped
/// alternating over it would look broken while gaining nothing a caller notices. Under load
/// the ratio alone decides: the costs are multiplied by the calls outstanding.
pub(crate) const IDLE_MARGIN: f64 = 20e6;

/// A latency estimate after observing `rtt`, `elapsed` after the previous estimate: a latency
/// above the estimate replaces it at once (the *peak*, so one slow answer is felt at once), one
/// below it is blended in with a weight that grows with the time since the last observation
/// (an exponentially weighted moving average over time, with time constant `decay`). This is
/// Finagle's and linkerd's peak-EWMA.
pub(crate) fn observe(estimate: f64, elapsed: f64, rtt: f64, decay: f64) -> f64 {
    if rtt >= estimate {
        return rtt;
    }
    let kept = (-elapsed / decay).exp();
    estimate * kept + rtt * (1.0 - kept)
}

/// An estimate `elapsed` after it was last updated: it fades towards zero, so an endpoint that
/// was slow once and has had no traffic since is tried again eventually, rather than never.
pub(crate) fn decayed(estimate: f64, elapsed: f64, decay: f64) -> f64 {
    estimate * (-elapsed / decay).exp()
}

/// What sending one more call to an endpoint is expected to cost: its latency estimate times the
/// calls it would then have outstanding. `None` for an endpoint never observed, whose cost is
/// not known yet.
pub(crate) fn cost(estimate: Option<f64>, pending: u32) -> Option<f64> {
    estimate.map(|estimate| estimate * f64::from(pending + 1))
}

/// One candidate of a choice: its cost (when known) and its calls outstanding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) cost: Option<f64>,
    pub(crate) pending: u32,
}

/// Whether the call goes to `second` rather than `first`, whose turn it is.
///
/// When both costs are known, `second` must be cheaper by more than a factor of [`ALIKE`], and
/// when both are idle also by more than [`IDLE_MARGIN`]. When either is
/// unknown (an endpoint that has not answered yet), latency cannot be compared and the calls
/// outstanding decide, with the same tolerance: a new endpoint gets its turn, but not every
/// call while its first answer is on its way.
pub(crate) fn prefer_second(first: Candidate, second: Candidate) -> bool {
    match (first.cost, second.cost) {
        (Some(first_cost), Some(second_cost)) => {
            let idle = first.pending == 0 && second.pending == 0;
            second_cost * ALIKE < first_cost && (!idle || first_cost - second_cost > IDLE_MARGIN)
        }
        _ => f64::from(second.pending + 1) * ALIKE < f64::from(first.pending + 1),
    }
}

/// Slow start's weight for an endpoint `elapsed` into a ramp of `window`: it rises linearly from
/// `min_weight` to 1 (Envoy's slow start with aggression 1).
pub(crate) fn ramp_weight(elapsed: f64, window: f64, min_weight: f64) -> f64 {
    if elapsed >= window {
        return 1.0;
    }
    (elapsed / window).max(min_weight)
}

/// Whether a ramping endpoint of slow-start `weight` takes a turn it won, given the `credit` it
/// has saved from turns it gave up, and its credit after: it takes `weight` of the turns it
/// wins, evenly spread (a smooth weighted choice, with no randomness).
pub(crate) fn spend_turn(credit: f64, weight: f64) -> (bool, f64) {
    let credit = credit + weight;
    if credit >= 1.0 {
        (true, credit - 1.0)
    } else {
        (false, credit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    const DECAY: f64 = 10_000.0 * MS;

    #[test]
    fn a_slower_answer_replaces_the_estimate_at_once() {
        assert_eq!(observe(2.0 * MS, 1.0 * MS, 50.0 * MS, DECAY), 50.0 * MS);
    }

    #[test]
    fn a_faster_answer_is_blended_in_by_the_time_since_the_last() {
        let soon = observe(50.0 * MS, 1.0 * MS, 2.0 * MS, DECAY);
        let later = observe(50.0 * MS, 10_000.0 * MS, 2.0 * MS, DECAY);
        assert!(soon > 49.0 * MS, "{soon}");
        assert!((later - (2.0 * MS + 48.0 * MS / std::f64::consts::E)).abs() < 1.0);
    }

    #[test]
    fn an_unused_estimate_fades() {
        assert_eq!(decayed(50.0 * MS, 0.0, DECAY), 50.0 * MS);
        let faded = decayed(50.0 * MS, 3.0 * DECAY, DECAY);
        assert!(faded < 2.5 * MS, "{faded}");
    }

    fn candidate(estimate_ms: f64, pending: u32) -> Candidate {
        Candidate {
            cost: cost(Some(estimate_ms * MS), pending),
            pending,
        }
    }

    #[test]
    fn alike_endpoints_keep_their_turn() {
        assert!(!prefer_second(candidate(1.3, 0), candidate(1.1, 0)));
        assert!(!prefer_second(candidate(1.5, 8), candidate(1.5, 7)));
    }

    #[test]
    fn idle_endpoints_a_few_milliseconds_apart_are_alike_however_large_the_ratio() {
        // A first answer's handshake on a busy host against a pooled connection's answer.
        assert!(!prefer_second(candidate(15.0, 0), candidate(0.8, 0)));
        assert!(prefer_second(candidate(52.0, 0), candidate(1.5, 0)));
        // Under load the ratio alone decides.
        assert!(prefer_second(candidate(15.0, 1), candidate(0.8, 1)));
    }

    #[test]
    fn a_slow_or_busy_endpoint_loses_its_turn() {
        assert!(prefer_second(candidate(52.0, 0), candidate(1.5, 8)));
        assert!(prefer_second(candidate(1.5, 12), candidate(1.5, 2)));
        assert!(!prefer_second(candidate(1.5, 8), candidate(52.0, 0)));
    }

    #[test]
    fn an_unobserved_endpoint_is_compared_by_calls_outstanding() {
        let new = Candidate {
            cost: None,
            pending: 0,
        };
        assert!(!prefer_second(new, candidate(1.5, 0)));
        assert!(prefer_second(candidate(1.5, 4), new));
        let busy_new = Candidate { pending: 3, ..new };
        assert!(!prefer_second(candidate(1.5, 4), busy_new));
    }

    #[test]
    fn slow_start_ramps_linearly_from_the_minimum_weight() {
        let window = 10.0;
        assert_eq!(ramp_weight(0.0, window, 0.1), 0.1);
        assert_eq!(ramp_weight(0.5, window, 0.1), 0.1);
        assert!((ramp_weight(5.0, window, 0.1) - 0.5).abs() < 1e-9);
        assert_eq!(ramp_weight(10.0, window, 0.1), 1.0);
        assert_eq!(ramp_weight(99.0, window, 0.1), 1.0);
    }

    #[test]
    fn a_ramping_endpoint_takes_its_weight_of_the_turns_it_wins() {
        let mut credit = 0.0;
        let mut taken = 0;
        for _ in 0..100 {
            let (take, left) = spend_turn(credit, 0.25);
            credit = left;
            taken += usize::from(take);
        }
        assert_eq!(taken, 25);
        assert_eq!(spend_turn(0.0, 1.0), (true, 0.0));
    }
}
