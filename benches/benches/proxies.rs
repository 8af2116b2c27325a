//! The gateway beside nginx and HAProxy, measured by the shared harness in
//! `../shared/bench/proxies` (relative to the workspace root).
//!
//! Run with `cargo bench -p resilience-benches --bench proxies` (`-- --mode kill` for a replica
//! killed and stopped under load, `-- --mode gray` for a replica of the real demo that is slow
//! or answers 500s, `-- --help` for the flags). Needs nginx, HAProxy and wrk:
//! `apt-get install -y nginx haproxy wrk jq curl gettext-base iproute2 util-linux`.
//!
//! The bench builds the release `demo-gateway`, hands the harness a command that starts it on
//! the harness's backends (`GATEWAY_CMD`; the harness starts, pins and stops it), runs `run.sh`
//! (wrk against a backend directly, nginx, HAProxy, `reqwest-floor` and the gateway, round by
//! round) or `kill_replica.sh`, prints the harness's table as it comes and writes it under
//! `benches/results/`, with the harness's per-run data as JSON beside it.
//!
//! In the throughput run `reqwest-floor` (the least a reqwest proxy can do, on the gateway's
//! own reqwest configuration) is the harness's `floor` target (`FLOOR_CMD`), measured in the
//! same rounds, so the gateway's own cost reads as gateway / floor within one run.
//!
//! Why the shell harness rather than our own load generator: nginx and HAProxy are measured by
//! the same scripts, the same wrk and the same CPU placement the rest of the team uses, so the
//! gateway's numbers compare with theirs within one run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::{Parser, ValueEnum};
use resilience_benches::Result;
use resilience_benches::harness::{
    INSTALL_HINT, REQUIRED_TOOLS, require_tools, separate_tables, shell_quote, tsv_to_json,
};
use resilience_benches::machine::Machine;
use resilience_benches::{binary, harness, results};
use serde::Serialize;
use serde_json::Value;

/// The API key the gateway is started with and every client sends.
const API_KEY: &str = "benchkey";

/// The gateway beside nginx and HAProxy, through the shared shell harness.
#[derive(Debug, Parser)]
#[command(name = "proxies")]
struct Args {
    /// What to run: `throughput` (run.sh) or `kill` (kill_replica.sh).
    #[arg(long, value_enum, default_value_t = Mode::Throughput)]
    mode: Mode,
    /// Rounds of run.sh, each target once per round (the harness's ROUNDS).
    #[arg(long, env = "ROUNDS", default_value_t = 3)]
    rounds: u32,
    /// Loopback port the gateway listens on.
    #[arg(long, default_value_t = 18090)]
    gateway_port: u16,
    /// Run this gateway binary instead of building the workspace's (an older build, or
    /// `reqwest-floor` for the floor of any reqwest-based gateway).
    #[arg(long)]
    gateway: Option<PathBuf>,
    /// Run this `reqwest-floor` binary as the `floor` target instead of building the
    /// workspace's (throughput mode).
    #[arg(long)]
    floor: Option<PathBuf>,
    /// One more argument for `reqwest-floor` (repeat for several), e.g.
    /// `--floor-arg=--reqwest-default`.
    #[arg(long, allow_hyphen_values = true)]
    floor_arg: Vec<String>,
    /// Leave the floor out of the throughput run.
    #[arg(long)]
    no_floor: bool,
    /// The harness's folder [default: ../shared/bench/proxies from the workspace root].
    #[arg(long, env = "PROXY_HARNESS")]
    harness: Option<PathBuf>,
    /// Print only; write nothing under benches/results/.
    #[arg(long)]
    no_save: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Requests/s and latency of each target (run.sh, ≈ 3 min with 3 rounds).
    Throughput,
    /// users-2 killed, then stopped, under load through each target (kill_replica.sh, ≈ 3 min).
    Kill,
    /// Gray failures: users-2 of the real demo 50 / 300 ms slower or answering 500 to 30 % /
    /// all, through the gateway (the whole demo, with its defaults), nginx and HAProxy, round
    /// robin and least-connections, beside a fault-free run (gray_failures.sh, ≈ 9 min).
    Gray,
}

impl Mode {
    fn script(self) -> &'static str {
        match self {
            Self::Throughput => "run.sh",
            Self::Kill => "kill_replica.sh",
            Self::Gray => "gray_failures.sh",
        }
    }

    /// The name of the results files.
    fn bench(self) -> &'static str {
        match self {
            Self::Throughput => "proxies",
            Self::Kill => "proxies_kill",
            Self::Gray => "proxies_gray",
        }
    }
}

/// Everything written to the JSON file.
#[derive(Debug, Serialize)]
struct Report {
    script: String,
    /// The variables the bench gave the harness (the rest of the environment passes through).
    env: BTreeMap<&'static str, String>,
    /// Where the harness kept its raw data (wrk outputs, configs, timelines).
    harness_results_dir: String,
    /// throughput: every row of the harness's `summary.tsv`; kill: each scenario's `loadcheck`
    /// JSON by name.
    data: Value,
    /// The harness's printed table, as captured.
    output: String,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("proxies: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let harness = args.harness.clone().unwrap_or_else(harness::default_dir);
    let script = harness.join(args.mode.script());
    if !script.is_file() {
        return Err(format!(
            "the harness script {} does not exist (pass --harness DIR)",
            script.display()
        )
        .into());
    }
    require_tools(
        &REQUIRED_TOOLS,
        ": the harness runs nginx, HAProxy and wrk",
        INSTALL_HINT,
    )?;
    let machine = Machine::now();
    let gateway = binary::given_or_built_gateway(args.gateway.as_deref())?;
    let floor = match (args.mode, args.no_floor, &args.floor) {
        (Mode::Throughput, false, Some(floor)) => Some(floor.clone()),
        (Mode::Throughput, false, None) => Some(binary::build_release_floor()?),
        _ => None,
    };
    let env = harness_env(&args, &gateway, floor.as_deref(), &machine);
    let harness_results = PathBuf::from(&env["RESULTS_DIR"]);
    println!("machine: {}", machine.describe());
    println!("harness: {}", script.display());
    for (name, value) in &env {
        println!("  {name}={value}");
    }

    // gray_failures.sh starts the whole demo itself, from the binary it is given.
    let script_args = match args.mode {
        Mode::Gray => vec![gateway.display().to_string(), env["RESULTS_DIR"].clone()],
        Mode::Throughput | Mode::Kill => Vec::new(),
    };
    let output = run_script(&script, &script_args, &env)?;

    let data = match args.mode {
        Mode::Throughput => {
            let summary = harness_results.join("summary.tsv");
            let text = std::fs::read_to_string(&summary)
                .map_err(|err| format!("cannot read {}: {err}", summary.display()))?;
            tsv_to_json(&text)
        }
        Mode::Kill => scenario_reports(&harness_results)?,
        // Its table, in the output, is all it reports.
        Mode::Gray => Value::Null,
    };
    let markdown = render(&args, &script, &env, &output);
    if !args.no_save {
        let report = Report {
            script: script.display().to_string(),
            env,
            harness_results_dir: harness_results.display().to_string(),
            data,
            output,
        };
        let (json, md) = results::write(args.mode.bench(), &machine, false, &report, &markdown)?;
        println!("wrote {} and {}", json.display(), md.display());
    }
    Ok(())
}

/// The variables the harness reads (see its README). The backends' ports are the harness's
/// unless the environment overrides them, and the gateway is pointed at the same ones.
fn harness_env(
    args: &Args,
    gateway: &Path,
    floor: Option<&Path>,
    machine: &Machine,
) -> BTreeMap<&'static str, String> {
    let port = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let (users_1, users_2, orders) = (
        port("USERS1_PORT", "18081"),
        port("USERS2_PORT", "18083"),
        port("ORDERS_PORT", "18082"),
    );
    let listen = format!("127.0.0.1:{}", args.gateway_port);
    let floor_listen = format!("127.0.0.1:{}", args.gateway_port + 1);
    let floor_cmd = floor.map(|floor| {
        let mut words = vec![
            shell_quote(&floor.display().to_string()),
            format!("--listen {floor_listen}"),
            format!("--users http://127.0.0.1:{users_1},http://127.0.0.1:{users_2}"),
            format!("--orders http://127.0.0.1:{orders}"),
        ];
        words.extend(args.floor_arg.iter().map(|arg| shell_quote(arg)));
        words.join(" ")
    });
    let gateway_cmd = [
        shell_quote(&gateway.display().to_string()),
        "--no-spawn".into(),
        format!("--listen {listen}"),
        format!("--users http://127.0.0.1:{users_1},http://127.0.0.1:{users_2}"),
        format!("--orders http://127.0.0.1:{orders}"),
        format!("--api-key {API_KEY}"),
        // Far above anything wrk sends: the limiter is on the path but never refuses.
        "--rate-limit 1000000000 --rate-burst 1000000000".into(),
        // The harness's backends answer their health on /health; they have no /ready (the
        // demo services' readiness path, the gateway's default), and a check that answers 404
        // leaves a restarted replica out until its breaker's open duration ends.
        "--health-path /health".into(),
    ]
    .join(" ");
    // Builds (the harness's backend) and raw results go under cargo's target directory, not into
    // the shared harness's folder.
    let out_root = std::env::var("OUT_ROOT").unwrap_or_else(|_| {
        binary::target_dir()
            .join("proxy-bench")
            .display()
            .to_string()
    });
    let kind = match args.mode {
        Mode::Throughput => "run",
        Mode::Kill => "kill",
        Mode::Gray => "gray",
    };
    let results_dir = format!("{out_root}/results/{kind}-{}", machine.file_stamp());
    let mut env = BTreeMap::from([
        ("AUTH_HEADER", format!("x-api-key: {API_KEY}")),
        ("GATEWAY_URL", format!("http://{listen}")),
        ("GATEWAY_CMD", gateway_cmd),
        ("OUT_ROOT", out_root),
        ("RESULTS_DIR", results_dir),
    ]);
    // The gateway runs with its defaults: like nginx (`access_log off`) and HAProxy (no `log`
    // line) it writes no line per request unless `--access-log` (or `RUST_LOG`) asks for one.
    if let Ok(filter) = std::env::var("RUST_LOG") {
        env.insert("RUST_LOG", filter);
    }
    match args.mode {
        Mode::Throughput => {
            env.insert("ROUNDS", args.rounds.to_string());
            if let Some(floor_cmd) = floor_cmd {
                env.insert("FLOOR_CMD", floor_cmd);
                env.insert("FLOOR_URL", format!("http://{floor_listen}"));
                env.insert("TARGETS", "direct nginx haproxy floor gateway".into());
            }
        }
        Mode::Kill => {
            let proxies =
                std::env::var("PROXIES").unwrap_or_else(|_| "nginx haproxy gateway".into());
            env.insert("PROXIES", proxies);
        }
        Mode::Gray => {}
    }
    env
}

/// Runs the script with `env` added to this environment; its log (stderr) goes straight to ours,
/// its stdout (the table) is echoed line by line and returned.
fn run_script(
    script: &Path,
    script_args: &[String],
    env: &BTreeMap<&'static str, String>,
) -> Result<String> {
    let mut child = Command::new("bash")
        .arg(script)
        .args(script_args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| format!("cannot run bash {}: {err}", script.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or("the harness's stdout was not captured")?;
    let mut output = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|err| format!("reading the harness's output: {err}"))?;
        println!("{line}");
        output.push_str(&line);
        output.push('\n');
    }
    let status = child
        .wait()
        .map_err(|err| format!("waiting for the harness: {err}"))?;
    if status.success() {
        Ok(output)
    } else {
        Err(format!("{} failed ({status}); its log is above", script.display()).into())
    }
}

/// Each scenario's `loadcheck` JSON (`PROXY-MODE-tryN.json`) in the harness's results folder.
fn scenario_reports(dir: &Path) -> Result<Value> {
    let mut scenarios = serde_json::Map::new();
    let entries =
        std::fs::read_dir(dir).map_err(|err| format!("cannot read {}: {err}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let name = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            scenarios.insert(name, serde_json::from_str(&text)?);
        }
    }
    Ok(Value::Object(scenarios))
}

/// The markdown file: how the run was made, then the harness's output as printed.
fn render(
    args: &Args,
    script: &Path,
    env: &BTreeMap<&'static str, String>,
    output: &str,
) -> String {
    let mut flags = match args.mode {
        Mode::Throughput => format!("--rounds {}", args.rounds),
        Mode::Kill => "--mode kill".into(),
        Mode::Gray => "--mode gray".into(),
    };
    if let Some(gateway) = &args.gateway {
        flags.push_str(&format!(" --gateway {}", gateway.display()));
    }
    if let Some(floor) = &args.floor {
        flags.push_str(&format!(" --floor {}", floor.display()));
    }
    for arg in &args.floor_arg {
        flags.push_str(&format!(" --floor-arg={arg}"));
    }
    if args.no_floor {
        flags.push_str(" --no-floor");
    }
    let settings: String = env
        .iter()
        .map(|(name, value)| format!("- `{name}={value}`\n"))
        .collect();
    format!(
        "Command: `cargo bench -p resilience-benches --bench proxies -- {flags}`, which ran `{}` with\n\n{settings}\nThe harness's output:\n\n{}",
        script.display(),
        separate_tables(output.trim())
    )
}
