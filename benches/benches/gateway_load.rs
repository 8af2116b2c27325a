//! Load through the gateway against one users replica directly, on this machine's loopback.
//!
//! Run with `cargo bench -p resilience-benches --bench gateway_load` (`-- --quick` for a smoke
//! run, `-- --help` for the flags).
//!
//! Builds the release `demo-gateway`, starts users-1 and users-2 (one shared database), the order
//! service and a gateway in front, then measures `GET /users/1` on users-1 directly (a) and
//! `GET /api/users/1` through the gateway (b):
//!
//! - closed loop: N keep-alive connections as fast as they are answered, A B A B over several
//!   rounds so that drift on the machine hits both alike; the median of the per-round ratios
//!   (b)/(a) is the headline;
//! - fixed rate: requests sent on a schedule whatever the answers, latency counted from the
//!   scheduled send time (no coordinated omission), for the latency the gateway adds when nothing
//!   is saturated.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use resilience_benches::Result;
use resilience_benches::args::parse_duration;
use resilience_benches::client::{Connection, Target};
use resilience_benches::closed_loop::{ClosedLoop, RunSummary};
use resilience_benches::cluster::{API_KEY, Cluster};
use resilience_benches::cpu::CpuMeter;
use resilience_benches::machine::Machine;
use resilience_benches::open_loop::{OpenLoop, OpenSummary};
use resilience_benches::summary::{format_delta_us, format_us, median};
use resilience_benches::table::Table;
use resilience_benches::{binary, results};
use serde::Serialize;

/// The targets.
const TARGET_RATIO: f64 = 0.45;
const TARGET_ADDED_P50_US: i64 = 150;

/// Load through the gateway against one users replica directly.
#[derive(Debug, Parser)]
#[command(name = "gateway_load")]
struct Args {
    /// Measured time of each closed-loop run [default: 10s; 1s with --quick].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Warm-up before each run [default: 2s; 300ms with --quick].
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Concurrent keep-alive connections (closed loop; also the fixed-rate pool).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Closed-loop rounds, each one run direct and one through the gateway [default: 3; 1 with
    /// --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// Requests per second of the fixed-rate runs.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Measured time of each fixed-rate run [default: 10s; 1s with --quick].
    #[arg(long, value_parser = parse_duration)]
    rate_duration: Option<Duration>,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// A smoke run: short runs, one round; results are written with `-quick` in their names.
    #[arg(long)]
    quick: bool,
    /// Print only; write nothing under benches/results/.
    #[arg(long)]
    no_save: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The run's settings once `--quick` is applied.
#[derive(Debug, Clone, Serialize)]
struct Settings {
    duration_s: f64,
    warmup_s: f64,
    concurrency: usize,
    rounds: usize,
    rate: u32,
    rate_duration_s: f64,
    client_threads: usize,
    quick: bool,
}

impl Args {
    fn settings(&self) -> Settings {
        let pick = |given: Option<Duration>, normal: Duration, quick: Duration| {
            given
                .unwrap_or(if self.quick { quick } else { normal })
                .as_secs_f64()
        };
        Settings {
            duration_s: pick(self.duration, secs(10.0), secs(1.0)),
            warmup_s: pick(self.warmup, secs(2.0), secs(0.3)),
            concurrency: self.concurrency.max(1),
            rounds: self.rounds.unwrap_or(if self.quick { 1 } else { 3 }).max(1),
            rate: self.rate.max(1),
            rate_duration_s: pick(self.rate_duration, secs(10.0), secs(1.0)),
            client_threads: self.client_threads.max(1),
            quick: self.quick,
        }
    }
}

fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

/// One closed-loop run.
#[derive(Debug, Clone, Serialize)]
struct ClosedRun {
    round: usize,
    target: String,
    #[serde(flatten)]
    summary: RunSummary,
    first_failure: Option<String>,
    /// CPU time per request of each process during the measured time, in µs.
    cpu_us_per_request: Vec<(String, f64)>,
    /// CPU time of all of them over the measured time: how many of the cores were busy.
    cores_busy: f64,
}

/// One fixed-rate run.
#[derive(Debug, Clone, Serialize)]
struct OpenRun {
    target: String,
    #[serde(flatten)]
    summary: OpenSummary,
    first_failure: Option<String>,
}

/// Everything written to the JSON file.
#[derive(Debug, Serialize)]
struct Report {
    settings: Settings,
    closed_loop: Vec<ClosedRun>,
    ratios: Vec<f64>,
    median_ratio: Option<f64>,
    ratio_target: f64,
    ratio_met: bool,
    fixed_rate: Vec<OpenRun>,
    added_p50_us: Option<i64>,
    added_p50_service_time_us: Option<i64>,
    added_p50_target_us: i64,
    added_p50_met: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway_load: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let settings = args.settings();
    let machine = Machine::now();
    let binary = binary::build_release_gateway()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .enable_all()
        .build()?;
    let cluster = Cluster::start(&binary, &[])?;
    println!("machine: {}", machine.describe());
    println!(
        "users-1 {} (pid {}), users-2 {} (pid {}), orders {}, gateway {} (pid {})\n",
        cluster.users(0).map(|u| u.url("")).unwrap_or_default(),
        cluster.users(0).map_or(0, |u| u.pid()),
        cluster.users(1).map(|u| u.url("")).unwrap_or_default(),
        cluster.users(1).map_or(0, |u| u.pid()),
        cluster.orders().url(""),
        cluster.gateway().url(""),
        cluster.gateway().pid(),
    );
    let report = runtime.block_on(measure(&settings, &cluster))?;
    let markdown = render(&report);
    println!("\n{markdown}");
    if !args.no_save {
        let (json, md) =
            results::write("gateway_load", &machine, settings.quick, &report, &markdown)?;
        println!("wrote {} and {}", json.display(), md.display());
    }
    Ok(())
}

async fn measure(settings: &Settings, cluster: &Cluster) -> Result<Report> {
    let users_1 = cluster.users(0).ok_or("users-1 is not running")?;
    let direct = Target {
        name: "direct".into(),
        addr: users_1.addr(),
        path: "/users/1".into(),
        api_key: None,
    };
    let gateway = Target {
        name: "gateway".into(),
        addr: cluster.gateway().addr(),
        path: "/api/users/1".into(),
        api_key: Some(API_KEY.into()),
    };
    for target in [&direct, &gateway] {
        check_answers(target).await?;
    }

    let shape = ClosedLoop {
        connections: settings.concurrency,
        warmup: secs(settings.warmup_s),
        keep_events: false,
        watch_served_by: None,
    };
    println!(
        "closed loop: {} connections, {:.1} s per run after {:.1} s warm-up, {} round(s)",
        settings.concurrency, settings.duration_s, settings.warmup_s, settings.rounds
    );
    let meter = cpu_meter(cluster)?;
    let mut closed = Vec::new();
    let mut ratios = Vec::new();
    for round in 1..=settings.rounds {
        let mut rates = Vec::new();
        for target in [&direct, &gateway] {
            let running = shape.start(target);
            let from = running.measuring_from();
            tokio::time::sleep_until(from.into()).await;
            let cpu_before = meter.read()?;
            tokio::time::sleep_until((from + secs(settings.duration_s)).into()).await;
            let cpu_after = meter.read()?;
            let outcome = running.stop().await?;
            let summary = outcome.summary();
            let (cpu_us_per_request, cores_busy) =
                cpu_share(&meter, &cpu_before, &cpu_after, &summary);
            println!(
                "  round {round} {:<8} {:>9.0} req/s  p50 {:>9}  p99 {:>9}  failed {}  cores busy {cores_busy:.2}",
                target.name,
                summary.requests_per_second,
                format_us(summary.latency.p50_us),
                format_us(summary.latency.p99_us),
                summary.failed
            );
            rates.push(summary.requests_per_second);
            closed.push(ClosedRun {
                round,
                target: target.name.clone(),
                summary,
                first_failure: outcome.first_failure,
                cpu_us_per_request,
                cores_busy,
            });
        }
        if let [direct_rate, gateway_rate] = rates[..] {
            if direct_rate > 0.0 {
                ratios.push(gateway_rate / direct_rate);
            }
        }
    }
    let median_ratio = median(&ratios);

    println!(
        "fixed rate: {} req/s for {:.1} s after 1 s warm-up, {} connections",
        settings.rate, settings.rate_duration_s, settings.concurrency
    );
    let open_shape = OpenLoop {
        rate: settings.rate,
        connections: settings.concurrency,
        warmup: Duration::from_secs(1).min(secs(settings.warmup_s.max(0.3))),
        duration: secs(settings.rate_duration_s),
    };
    let mut open = Vec::new();
    for target in [&direct, &gateway] {
        let outcome = open_shape.run(target).await?;
        let summary = outcome.summary(settings.rate);
        println!(
            "  {:<8} p50 {:>9}  p99 {:>9}  p99.9 {:>9}  failed {}",
            target.name,
            format_us(summary.response_time.p50_us),
            format_us(summary.response_time.p99_us),
            format_us(summary.response_time.p999_us),
            summary.failed
        );
        open.push(OpenRun {
            target: target.name.clone(),
            summary,
            first_failure: outcome.first_failure,
        });
    }
    let delta = |pick: fn(&OpenSummary) -> u64| match &open[..] {
        [direct, gateway] => Some(to_i64(pick(&gateway.summary)) - to_i64(pick(&direct.summary))),
        _ => None,
    };
    let added_p50_us = delta(|s| s.response_time.p50_us);
    let added_p50_service_time_us = delta(|s| s.service_time.p50_us);
    Ok(Report {
        settings: settings.clone(),
        closed_loop: closed,
        ratio_met: median_ratio.is_some_and(|ratio| ratio >= TARGET_RATIO),
        ratios,
        median_ratio,
        ratio_target: TARGET_RATIO,
        fixed_rate: open,
        added_p50_met: added_p50_us.is_some_and(|added| added <= TARGET_ADDED_P50_US),
        added_p50_us,
        added_p50_service_time_us,
        added_p50_target_us: TARGET_ADDED_P50_US,
    })
}

/// The load generator (this process), the gateway and the two users replicas.
fn cpu_meter(cluster: &Cluster) -> Result<CpuMeter> {
    let mut processes = vec![
        ("client".to_owned(), "self".to_owned()),
        ("gateway".to_owned(), cluster.gateway().pid().to_string()),
    ];
    for index in 0..2 {
        let users = cluster
            .users(index)
            .ok_or("a users replica is not running")?;
        processes.push((users.name().to_owned(), users.pid().to_string()));
    }
    Ok(CpuMeter::new(processes))
}

/// CPU µs per request of each process between two readings, and the cores they kept busy.
fn cpu_share(
    meter: &CpuMeter,
    before: &[Duration],
    after: &[Duration],
    summary: &RunSummary,
) -> (Vec<(String, f64)>, f64) {
    let used: Vec<Duration> = after
        .iter()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(*before))
        .collect();
    // Counts stay far below 2^52, where the conversion would round.
    #[allow(clippy::cast_precision_loss)]
    let requests = summary.requests.max(1) as f64;
    let per_request = meter
        .names()
        .into_iter()
        .zip(&used)
        .map(|(name, used)| (name, used.as_secs_f64() * 1e6 / requests))
        .collect();
    let total: Duration = used.iter().sum();
    (per_request, total.as_secs_f64() / summary.seconds.max(1e-9))
}

fn to_i64(micros: u64) -> i64 {
    i64::try_from(micros).unwrap_or(i64::MAX)
}

/// One request to each target before measuring: a wrong path or key fails here, loudly, rather
/// than as a run of fast 404s.
async fn check_answers(target: &Target) -> Result<()> {
    let answer = Connection::open(target).await?.get().await?;
    if answer.is_success() {
        Ok(())
    } else {
        Err(format!(
            "GET {} on {} answered {}: {}",
            target.path,
            target.name,
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
        .into())
    }
}

fn render(report: &Report) -> String {
    let settings = &report.settings;
    let mut text = format!(
        "## Closed loop: {} connections, {:.0} s per run after {:.1} s warm-up, {} rounds\n\n\
         (a) `direct`: `GET /users/1` on users-1; (b) `gateway`: `GET /api/users/1` through the \
         gateway (API key, rate limiter, retry, round robin over users-1 and users-2, breakers, \
         timeouts).\n\n",
        settings.concurrency, settings.duration_s, settings.warmup_s, settings.rounds
    );
    let mut table = Table::new([
        "round", "target", "req/s", "p50", "p99", "p99.9", "max", "errors",
    ])
    .left_aligned(2);
    for run in &report.closed_loop {
        let latency = &run.summary.latency;
        table.row([
            run.round.to_string(),
            run.target.clone(),
            format!("{:.0}", run.summary.requests_per_second),
            format_us(latency.p50_us),
            format_us(latency.p99_us),
            format_us(latency.p999_us),
            format_us(latency.max_us),
            run.summary.failed.to_string(),
        ]);
    }
    text.push_str(&table.to_markdown());
    text.push_str(
        "\nCPU time per request (µs, from /proc/PID/stat, 10 ms resolution) and the cores kept \
         busy, over each measured run:\n\n",
    );
    let names: Vec<String> = report
        .closed_loop
        .first()
        .map(|run| {
            run.cpu_us_per_request
                .iter()
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut cpu = Table::new(
        ["round".to_owned(), "target".to_owned()]
            .into_iter()
            .chain(names)
            .chain(["cores busy".to_owned()]),
    )
    .left_aligned(2);
    for run in &report.closed_loop {
        cpu.row(
            [run.round.to_string(), run.target.clone()]
                .into_iter()
                .chain(
                    run.cpu_us_per_request
                        .iter()
                        .map(|(_, us)| format!("{us:.1}")),
                )
                .chain([format!("{:.2}", run.cores_busy)]),
        );
    }
    text.push_str(&cpu.to_markdown());
    let ratios: Vec<String> = report.ratios.iter().map(|r| format!("{r:.3}")).collect();
    text.push_str(&format!(
        "\nMedian ratio gateway/direct req/s: **{}** (per round: {}). Target ≥ {:.2}: **{}**.\n\n",
        report
            .median_ratio
            .map_or_else(|| "n/a".into(), |r| format!("{r:.3}")),
        ratios.join(", "),
        report.ratio_target,
        met(report.ratio_met)
    ));

    text.push_str(&format!(
        "## Fixed rate: {} req/s, {:.0} s per target, latency from the scheduled send time\n\n",
        settings.rate, settings.rate_duration_s
    ));
    let mut table = Table::new([
        "target",
        "requests",
        "p50",
        "p99",
        "p99.9",
        "max",
        "errors",
        "p50 from actual send",
        "send lag p99",
    ]);
    for run in &report.fixed_rate {
        let summary = &run.summary;
        table.row([
            run.target.clone(),
            summary.requests.to_string(),
            format_us(summary.response_time.p50_us),
            format_us(summary.response_time.p99_us),
            format_us(summary.response_time.p999_us),
            format_us(summary.response_time.max_us),
            summary.failed.to_string(),
            format_us(summary.service_time.p50_us),
            format_us(summary.send_lag.p99_us),
        ]);
    }
    text.push_str(&table.to_markdown());
    text.push_str(&format!(
        "\nAdded p50 latency through the gateway: **{}** ({} counted from the actual send). \
         Target ≤ {} µs: **{}**.\n",
        report
            .added_p50_us
            .map_or_else(|| "n/a".into(), format_delta_us),
        report
            .added_p50_service_time_us
            .map_or_else(|| "n/a".into(), format_delta_us),
        report.added_p50_target_us,
        met(report.added_p50_met)
    ));
    text
}

fn met(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}
