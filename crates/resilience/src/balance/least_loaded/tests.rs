//! The balancer's rules, each checked on a simulated fleet under a seeded load on the paused
//! clock: what share a slow or failing endpoint keeps, slow start's ramp, ejection and its
//! guards, and where retries go.

use std::time::Duration;

use tower::retry::Retry;
use tower::{Service, ServiceExt};

use super::*;
use crate::backoff::ExponentialBackoff;
use crate::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use crate::retry::RetryPolicy;
use crate::sim::{Behaviour, Fleet, Load, SimEndpoint};
use tower_layer::Layer;

const FAST: Duration = Duration::from_millis(2);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fleet(behaviours: &[(&str, Behaviour)]) -> Fleet {
    behaviours
        .iter()
        .fold(Fleet::builder(42), |builder, (name, behaviour)| {
            builder.endpoint(*name, *behaviour)
        })
        .build()
}

fn config(outliers: Option<OutlierDetection>) -> LeastLoadedConfig {
    let builder = LeastLoadedConfig::builder().without_slow_start();
    match outliers {
        Some(outliers) => builder.outlier_detection(outliers),
        None => builder.without_outlier_detection(),
    }
    .build()
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn alike_endpoints_take_turns_when_idle() {
    let fleet = fleet(&[
        ("a", Behaviour::healthy(FAST)),
        ("b", Behaviour::healthy(ms(3))),
    ]);
    let balancer = LeastLoaded::new(fleet.endpoints());
    let mut seen = Vec::new();
    for _ in 0..6 {
        let answer = balancer.clone().oneshot(0u64).await.unwrap();
        seen.push(answer.endpoint.to_string());
        tokio::time::sleep(ms(500)).await;
    }
    assert_eq!(seen, ["a", "b", "a", "b", "a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn alike_endpoints_share_a_busy_load_evenly() {
    let fleet = fleet(&[
        ("a", Behaviour::healthy(FAST)),
        ("b", Behaviour::healthy(FAST)),
    ]);
    let report = fleet
        .run(
            Load::closed(16, Duration::from_secs(5)),
            LeastLoaded::new(fleet.endpoints()),
        )
        .await;
    assert_eq!(report.failed, 0, "{report}");
    let share = report.share("b");
    assert!((0.45..=0.55).contains(&share), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_replica_50ms_slower_keeps_under_two_percent_of_the_calls() {
    let fleet = fleet(&[
        ("fast", Behaviour::healthy(FAST)),
        ("slow", Behaviour::healthy(ms(52))),
    ]);
    let balancer = LeastLoaded::new(fleet.endpoints());
    let report = fleet
        .run(Load::closed(16, Duration::from_secs(10)), balancer)
        .await;
    assert_eq!(report.failed, 0, "{report}");
    assert!(report.share("slow") < 0.02, "{report}");
    // Round robin over the same fleet hands it half.
    let report = fleet
        .run(
            Load::closed(16, Duration::from_secs(10)),
            crate::balance::RoundRobin::new(fleet.endpoints()),
        )
        .await;
    assert!(report.share("slow") > 0.4, "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_busier_endpoint_loses_its_turn() {
    // "b" takes five times as long: calls pile up there, and the next two in turn favour "a".
    let fleet = fleet(&[
        ("a", Behaviour::healthy(FAST)),
        ("b", Behaviour::healthy(ms(10))),
    ]);
    let report = fleet
        .run(
            Load::closed(8, Duration::from_secs(5)),
            LeastLoaded::new(fleet.endpoints()),
        )
        .await;
    assert!(report.share("b") < 0.1, "{report}");
}

type Gated = crate::circuit_breaker::CircuitBreaker<SimEndpoint>;

fn gated(fleet: &Fleet, consecutive: u32) -> Vec<(String, Gated)> {
    let config = CircuitBreakerConfig::builder()
        .consecutive_failures(consecutive)
        .open_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    fleet
        .endpoints()
        .into_iter()
        .map(|(name, endpoint)| {
            let breaker = CircuitBreakerLayer::new(config.clone())
                .named(name.clone())
                .layer(endpoint);
            (name, breaker)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn skips_an_endpoint_whose_breaker_is_open() {
    let fleet = fleet(&[
        ("up", Behaviour::healthy(FAST)),
        ("down", Behaviour::healthy(FAST).failing(1.0)),
    ]);
    let endpoints = gated(&fleet, 2);
    let down = endpoints[1].1.handle();
    let balancer = LeastLoaded::with_config(endpoints, config(None));
    let report = fleet
        .run(Load::closed(4, Duration::from_secs(2)), balancer)
        .await;
    assert_eq!(down.state(), crate::circuit_breaker::State::Open);
    assert!(
        report.failed <= 4,
        "only the calls in flight when it tripped fail: {report}"
    );
    assert_eq!(report.share("up"), 1.0, "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_second_call_through_the_same_clone_goes_elsewhere() {
    // "b" is far slower, so a fresh pick would take "a" again; a retry must not.
    let fleet = fleet(&[
        ("a", Behaviour::healthy(FAST)),
        ("b", Behaviour::healthy(ms(40))),
    ]);
    let balancer = LeastLoaded::new(fleet.endpoints());
    for _ in 0..4 {
        balancer.clone().oneshot(0u64).await.unwrap();
    }
    let mut retrying = balancer.clone();
    let first = ServiceExt::<u64>::ready(&mut retrying)
        .await
        .unwrap()
        .call(0)
        .await
        .unwrap();
    let second = ServiceExt::<u64>::ready(&mut retrying)
        .await
        .unwrap()
        .call(0)
        .await
        .unwrap();
    assert_ne!(first.endpoint, second.endpoint);
}

#[tokio::test(start_paused = true)]
async fn endpoints_come_and_go_and_the_others_keep_their_load() {
    let fleet = fleet(&[
        ("a", Behaviour::healthy(FAST)),
        ("slow", Behaviour::healthy(ms(52))),
        ("c", Behaviour::healthy(FAST)),
    ]);
    let mut endpoints = fleet.endpoints();
    let c = endpoints.pop().unwrap();
    let balancer = LeastLoaded::with_config(endpoints, config(None));
    let report = fleet
        .run(Load::closed(8, Duration::from_secs(2)), balancer.clone())
        .await;
    assert!(report.share("slow") < 0.05, "{report}");
    balancer.handle().insert(c.0, c.1);
    let report = fleet
        .run(Load::closed(8, Duration::from_secs(2)), balancer.clone())
        .await;
    // "slow" is still known to be slow: the newcomer shares with "a", not with it.
    assert!(report.share("slow") < 0.05, "{report}");
    assert!(report.share("c") > 0.3, "{report}");
    assert!(balancer.handle().remove(&"a".to_owned()));
    assert_eq!(balancer.handle().keys(), ["slow", "c"]);
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_a_new_endpoint_up_over_its_window() {
    let fleet = fleet(&[
        ("old", Behaviour::healthy(FAST)),
        ("new", Behaviour::healthy(FAST)),
    ]);
    let mut endpoints = fleet.endpoints();
    let new = endpoints.pop().unwrap();
    let config = LeastLoadedConfig::builder()
        .slow_start(Duration::from_secs(10), 0.1)
        .without_outlier_detection()
        .build()
        .unwrap();
    let balancer = LeastLoaded::with_config(endpoints, config);
    balancer.handle().insert(new.0, new.1);
    let report = fleet
        .run(Load::closed(16, Duration::from_secs(12)), balancer)
        .await;
    let second = Duration::from_secs(1);
    let early = report.share_between("new", Duration::ZERO, second);
    let middle = report.share_between("new", 5 * second, 6 * second);
    let late = report.share_between("new", 10 * second, 12 * second);
    // Its weight is a tenth, then half, then all of its share (of one half).
    assert!(early < 0.1, "{early} {middle} {late}");
    assert!((0.2..=0.4).contains(&middle), "{early} {middle} {late}");
    assert!((0.45..=0.55).contains(&late), "{early} {middle} {late}");
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_failing_a_third_of_its_calls_is_ejected() {
    let fleet = fleet(&[
        ("good", Behaviour::healthy(FAST)),
        ("bad", Behaviour::healthy(FAST).failing(0.3)),
    ]);
    let balancer =
        LeastLoaded::with_config(fleet.endpoints(), config(Some(OutlierDetection::default())));
    let handle = balancer.handle();
    let report = fleet
        .run(Load::closed(16, Duration::from_secs(9)), balancer)
        .await;
    assert_eq!(handle.ejected(), 1);
    assert!(report.share("bad") < 0.05, "{report}");
    let status = handle.status();
    assert!(status[1].1.ejected_for.is_some(), "{status:?}");
    // Both failing alike: nobody stands out, nobody is ejected.
    let fleet = fleet_failing_alike();
    let balancer =
        LeastLoaded::with_config(fleet.endpoints(), config(Some(OutlierDetection::default())));
    let handle = balancer.handle();
    fleet
        .run(Load::closed(16, Duration::from_secs(5)), balancer)
        .await;
    assert_eq!(handle.ejected(), 0);
}

fn fleet_failing_alike() -> Fleet {
    fleet(&[
        ("a", Behaviour::healthy(FAST).failing(0.3)),
        ("b", Behaviour::healthy(FAST).failing(0.3)),
    ])
}

#[tokio::test(start_paused = true)]
async fn no_more_than_the_maximum_share_is_ejected() {
    let bad = Behaviour::healthy(FAST).failing(0.5);
    let good = Behaviour::healthy(FAST);
    let fleet = fleet(&[
        ("bad-1", bad),
        ("bad-2", bad),
        ("good-1", good),
        ("good-2", good),
    ]);
    let outliers = OutlierDetection::builder()
        .max_ejected_share(0.25)
        .build()
        .unwrap();
    let balancer = LeastLoaded::with_config(fleet.endpoints(), config(Some(outliers)));
    let handle = balancer.handle();
    let report = fleet
        .run(Load::closed(16, Duration::from_secs(5)), balancer)
        .await;
    assert_eq!(handle.ejected(), 1, "{:?}", handle.status());
    let still_in = report.share("bad-1").max(report.share("bad-2"));
    assert!(
        still_in > 0.1,
        "the one not ejected keeps taking calls: {report}"
    );
}

#[tokio::test(start_paused = true)]
async fn below_the_panic_threshold_calls_spread_over_every_endpoint() {
    let bad = Behaviour::healthy(FAST).failing(0.6);
    let fleet = fleet(&[
        ("bad-1", bad),
        ("bad-2", bad),
        ("good", Behaviour::healthy(FAST)),
    ]);
    let share_of_bad = |report: &crate::sim::Report| report.share("bad-1") + report.share("bad-2");
    // Both bad ones may be ejected, and nothing panics: everything goes to "good".
    let calm = OutlierDetection::builder()
        .max_ejected_share(1.0)
        .panic_threshold(0.0)
        .build()
        .unwrap();
    let balancer = LeastLoaded::with_config(fleet.endpoints(), config(Some(calm)));
    let handle = balancer.handle();
    fleet
        .run(Load::closed(16, Duration::from_secs(3)), balancer.clone())
        .await;
    assert_eq!(handle.ejected(), 2);
    let report = fleet
        .run(Load::closed(16, Duration::from_secs(2)), balancer)
        .await;
    assert_eq!(share_of_bad(&report), 0.0, "{report}");
    // With a panic threshold of one half, one healthy endpoint of three is too few: the
    // ejections are ignored and the calls spread again.
    let panicky = OutlierDetection::builder()
        .max_ejected_share(1.0)
        .panic_threshold(0.5)
        .build()
        .unwrap();
    let balancer = LeastLoaded::with_config(fleet.endpoints(), config(Some(panicky)));
    let handle = balancer.handle();
    fleet
        .run(Load::closed(16, Duration::from_secs(3)), balancer.clone())
        .await;
    assert_eq!(handle.ejected(), 2);
    let report = fleet
        .run(Load::closed(16, Duration::from_secs(2)), balancer)
        .await;
    assert!(share_of_bad(&report) > 0.3, "{report}");
}

fn retrying(
    balancer: LeastLoaded<String, SimEndpoint>,
    with_alternatives: bool,
) -> Retry<RetryPolicy, LeastLoaded<String, SimEndpoint>> {
    let mut policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(ExponentialBackoff::new(ms(100), ms(100)).with_jitter(0.0))
        .without_budget();
    if with_alternatives {
        policy = policy.alternatives(balancer.handle());
    }
    Retry::new(policy.build().unwrap(), balancer)
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_a_failure_goes_to_another_endpoint_at_once() {
    let fleet = fleet(&[
        ("good", Behaviour::healthy(FAST)),
        ("flaky", Behaviour::healthy(FAST).failing(0.3)),
    ]);
    let balancer = LeastLoaded::with_config(fleet.endpoints(), config(None));
    let report = fleet
        .run(
            Load::closed(4, Duration::from_secs(2)),
            retrying(balancer, true),
        )
        .await;
    assert_eq!(report.failed, 0, "{report}");
    assert!(
        report.slower_than(ms(10)) == 0,
        "no retry waited out a backoff: {report}"
    );
    // Without knowing the alternatives, every retry waits out its backoff.
    let balancer = LeastLoaded::with_config(fleet.endpoints(), config(None));
    let report = fleet
        .run(
            Load::closed(4, Duration::from_secs(2)),
            retrying(balancer, false),
        )
        .await;
    assert!(report.slower_than(ms(100)) > 0, "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_backs_off_when_no_other_endpoint_is_healthy() {
    let fleet = fleet(&[("only", Behaviour::healthy(FAST).failing(1.0))]);
    let balancer = LeastLoaded::with_config(fleet.endpoints(), config(None));
    let started = tokio::time::Instant::now();
    let result = retrying(balancer, true).oneshot(0).await;
    assert!(result.is_err());
    // Three attempts of 2 ms and two backoffs of 100 ms.
    assert_eq!(started.elapsed(), ms(206));
}
