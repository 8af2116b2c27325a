//! A model check of the breaker's concurrent part with loom: every interleaving of callers
//! taking probe permits, dropping them and forcing transitions, on the real `Breaker` built
//! over loom's atomics and mutex (`crate::sync`).
//!
//! Run with `RUSTFLAGS="--cfg resilience_loom" cargo test -p resilience --lib --release loom`
//! (`.ci/run` does).

use std::sync::Arc;
use std::time::Duration;

use super::classify::Outcome;
use super::config::CircuitBreakerConfig;
use super::events::{State, TransitionReason};
use super::state::Breaker;

/// Every interleaving with up to three preemptions per thread: enough to reach every race
/// between two or three callers here, and CI finishes in seconds, not minutes.
fn model(body: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(body);
}

/// A breaker that is half-open with `probes` permits: one failure opened it for a nanosecond,
/// and the first acquire moved it on.
fn half_open(probes: u32) -> Arc<Breaker> {
    let config = CircuitBreakerConfig::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_nanos(1))
        .open_jitter(0.0)
        .half_open_probes(probes)
        .build()
        .expect("a valid configuration");
    let breaker = Arc::new(Breaker::new(&config, Arc::from("model")));
    breaker
        .acquire()
        .expect("closed admits")
        .settle(Outcome::Failure, None);
    assert_eq!(breaker.state(), State::Open);
    std::thread::sleep(Duration::from_micros(1));
    breaker
}

#[test]
fn loom_a_dropped_probe_permit_goes_back_whatever_the_interleaving() {
    model(|| {
        let breaker = half_open(1);
        let racer = Arc::clone(&breaker);
        let taker = loom::thread::spawn(move || {
            // Takes the permit (or finds it taken) and drops it unsettled: a cancelled probe.
            drop(racer.acquire());
        });
        let mine = breaker.acquire();
        taker.join().expect("the other caller finished");
        drop(mine);
        assert_eq!(breaker.state(), State::HalfOpen);
        assert!(
            breaker.acquire().is_ok(),
            "every unsettled probe permit went back"
        );
    });
}

#[test]
fn loom_exactly_k_of_several_racing_callers_probe() {
    model(|| {
        let breaker = half_open(2);
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let breaker = Arc::clone(&breaker);
                loom::thread::spawn(move || breaker.acquire().ok())
            })
            .collect();
        let mine = breaker.acquire().ok();
        let mut permits: Vec<_> = callers
            .into_iter()
            .map(|caller| caller.join().expect("a caller finished"))
            .collect();
        permits.push(mine);
        assert_eq!(
            permits.iter().filter(|permit| permit.is_some()).count(),
            2,
            "two permits, three callers; now {:?} with {} free, last change {:?}",
            breaker.state(),
            breaker.free_probes(),
            breaker
                .metrics()
                .last_change
                .map(|c| (c.from, c.to, c.reason))
        );
    });
}

#[test]
fn loom_a_permit_from_an_earlier_period_never_returns_to_a_later_one() {
    model(|| {
        let breaker = half_open(1);
        let stale = breaker.acquire().expect("the one probe permit");
        let before = breaker.generation();
        let operator = Arc::clone(&breaker);
        let resets = loom::thread::spawn(move || {
            operator.force(State::Closed, TransitionReason::Reset);
        });
        drop(stale);
        resets.join().expect("the operator finished");
        assert_eq!(
            breaker.generation(),
            before + 1,
            "one transition, the reset"
        );
        assert_eq!(
            breaker.state(),
            State::Closed,
            "{} free, generation {}, last change {:?}",
            breaker.free_probes(),
            breaker.generation(),
            breaker
                .metrics()
                .last_change
                .map(|c| (c.from, c.to, c.reason))
        );
        assert_eq!(
            breaker.free_probes(),
            0,
            "the probe permit of the half-open period was not returned into the closed one"
        );
    });
}
