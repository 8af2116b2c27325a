//! User-space instructions per proxied request: the gateway beside nginx and `reqwest-floor`
//! (the least a reqwest proxy can do), counted by cachegrind instead of timed.
//!
//! Run with `cargo bench -p resilience-benches --bench instructions` (`-- --help` for the
//! flags). Needs valgrind, nginx and taskset: `apt-get install -y valgrind nginx util-linux`.
//!
//! Timings on a shared 2-core VM move by ±20 % from run to run, which hides any change smaller
//! than that. Instructions executed move far less: the same requests through the same binary
//! count the same within about ±1.2 % (what is left is how many requests each wakeup finds
//! waiting), so a change to the hot path shows as a number once it passes that, and the gateway
//! and nginx compare as a ratio that no neighbour's load disturbs. What they
//! leave out is the kernel (the socket calls, the same four per request for both, about half of
//! the gateway's CPU and most of nginx's), and what an instruction costs (a cache miss, an
//! atomic read-modify-write): the `proxies` bench measures time, this one the work.
//!
//! Each target runs alone, pinned to CPU 0, under `valgrind --tool=cachegrind` on the shared
//! harness's backends
//! (`../shared/bench/proxies/backend`), twice: once serving `--requests` GETs of
//! `/api/users/1` over 4 keep-alive connections, once serving none for as long. The difference
//! over the requests is the count per request, with start-up, shutdown and idle time taken out.
//! nginx runs as the harness configures it, with one worker and no master process, so that one
//! process does all its work. `reqwest-floor` takes the gateway's command line; `--floor-arg`
//! adds to it (e.g. `--floor-arg=--without=no-retries`, to count what one setting of the proxy
//! client buys).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use resilience_benches::Result;
use resilience_benches::harness::require_tools;
use resilience_benches::machine::Machine;
use resilience_benches::{binary, harness, results};
use serde::Serialize;

/// The API key the gateway is started with and every request sends.
const API_KEY: &str = "benchkey";
/// Connections the requests are spread over.
const CONNECTIONS: usize = 4;
/// The backends, as the harness runs them: port and name.
const BACKENDS: [(u16, &str); 3] = [(18081, "users-1"), (18083, "users-2"), (18082, "orders-1")];

/// User-space instructions per proxied request: nginx, the reqwest floor and the gateway.
#[derive(Debug, Parser)]
#[command(name = "instructions")]
struct Args {
    /// Requests counted per target.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Loopback port the proxy under count listens on.
    #[arg(long, default_value_t = 18090)]
    port: u16,
    /// Count this gateway binary instead of building the workspace's (to compare two builds:
    /// copy one aside, change the code, count both).
    #[arg(long)]
    gateway: Option<PathBuf>,
    /// Count this `reqwest-floor` binary instead of building the workspace's.
    #[arg(long)]
    floor: Option<PathBuf>,
    /// One more argument for `reqwest-floor` (repeat for several).
    #[arg(long, allow_hyphen_values = true)]
    floor_arg: Vec<String>,
    /// Count only these targets (comma-separated; default all three).
    #[arg(long, value_delimiter = ',', default_values_t = [Target::Nginx, Target::Floor, Target::Gateway])]
    only: Vec<Target>,
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

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    Nginx,
    Floor,
    Gateway,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Floor => "floor",
            Self::Gateway => "gateway",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One target's counts.
#[derive(Debug, Serialize)]
struct Count {
    target: &'static str,
    requests: usize,
    /// Instructions of the run that served the requests, and of the one that served none.
    loaded: u64,
    idle: u64,
    per_request: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("instructions: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    require_tools(
        &["valgrind", "nginx", "taskset"],
        "",
        "apt-get install -y valgrind nginx util-linux",
    )?;
    let harness = args.harness.clone().unwrap_or_else(harness::default_dir);
    let machine = Machine::now();
    let backend = build_backend(&harness)?;
    let work = tempfile::tempdir()?;
    let _backends = Backends::start(&backend, work.path())?;
    println!("machine: {}", machine.describe());

    let mut targets: Vec<(&'static str, Vec<String>)> = Vec::new();
    for target in &args.only {
        let command = match target {
            Target::Nginx => nginx_command(&harness, work.path(), args.port)?,
            Target::Floor => {
                let floor = match &args.floor {
                    Some(path) => path.clone(),
                    None => binary::build_release_floor()?,
                };
                let mut command = gateway_command(&floor, args.port);
                command.extend(args.floor_arg.iter().cloned());
                command
            }
            Target::Gateway => gateway_command(
                &binary::given_or_built_gateway(args.gateway.as_deref())?,
                args.port,
            ),
        };
        targets.push((target.name(), command));
    }
    let mut counts = Vec::new();
    for (target, command) in &targets {
        let loaded = count(
            target,
            command,
            work.path(),
            args.port,
            Load::Requests(args.requests),
        )?;
        let idle = count(
            target,
            command,
            work.path(),
            args.port,
            Load::Idle(loaded.wall),
        )?;
        let per_request =
            loaded.instructions.saturating_sub(idle.instructions) / args.requests.max(1) as u64;
        println!("{target}: {per_request} instructions per request");
        counts.push(Count {
            target,
            requests: args.requests,
            loaded: loaded.instructions,
            idle: idle.instructions,
            per_request,
        });
    }
    let markdown = render(&args, &counts);
    println!("\n{markdown}");
    if !args.no_save {
        let (json, md) = results::write("instructions", &machine, false, &counts, &markdown)?;
        println!("wrote {} and {}", json.display(), md.display());
    }
    Ok(())
}

/// Builds the harness's backend (release) under cargo's target directory, as the `proxies`
/// bench's harness run would.
fn build_backend(harness: &Path) -> Result<PathBuf> {
    let target = binary::target_dir()
        .join("proxy-bench")
        .join("backend-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the harness's backend");
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "-q", "--manifest-path"])
        .arg(harness.join("backend").join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()?;
    if !status.success() {
        return Err(format!("building the harness's backend failed: {status}").into());
    }
    Ok(target.join("release").join("backend"))
}

/// The harness's three backends, stopped when dropped.
struct Backends(Vec<Child>);

impl Backends {
    fn start(program: &Path, logs: &Path) -> Result<Self> {
        let mut children = Vec::new();
        for (port, name) in BACKENDS {
            let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
            children.push(
                Command::new(program)
                    .args(["--port", &port.to_string(), "--name", name])
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()?,
            );
        }
        for (port, _) in BACKENDS {
            wait_until(|| get(port, "/health").is_ok())?;
        }
        Ok(Self(children))
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn gateway_command(gateway: &Path, port: u16) -> Vec<String> {
    let [(users_1, _), (users_2, _), (orders, _)] = BACKENDS;
    [
        gateway.display().to_string(),
        "--no-spawn".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--users".into(),
        format!("http://127.0.0.1:{users_1},http://127.0.0.1:{users_2}"),
        "--orders".into(),
        format!("http://127.0.0.1:{orders}"),
        "--api-key".into(),
        API_KEY.into(),
        "--rate-limit".into(),
        "1000000000".into(),
        "--rate-burst".into(),
        "1000000000".into(),
    ]
    .into()
}

/// nginx with the harness's configuration, one worker, in the foreground without a master.
fn nginx_command(harness: &Path, work: &Path, port: u16) -> Result<Vec<String>> {
    let template = harness.join("conf").join("nginx.conf.tmpl");
    let text = std::fs::read_to_string(&template)
        .map_err(|err| format!("cannot read {}: {err}", template.display()))?;
    let run_dir = work.join("nginx");
    std::fs::create_dir_all(run_dir.join("nginx-tmp"))?;
    let [(users_1, _), (users_2, _), (orders, _)] = BACKENDS;
    let values = [
        ("PROXY_WORKERS", "1".to_owned()),
        ("RUN_DIR", run_dir.display().to_string()),
        ("USERS1_PORT", users_1.to_string()),
        ("USERS2_PORT", users_2.to_string()),
        ("ORDERS_PORT", orders.to_string()),
        ("PROXY_HOST", "127.0.0.1".into()),
        ("PROXY_PORT", port.to_string()),
        ("CONNECT_TIMEOUT", "1s".into()),
        ("SERVER_TIMEOUT", "5s".into()),
    ];
    let mut config = values
        .iter()
        .fold(text, |text, (name, value)| {
            text.replace(&format!("${{{name}}}"), value)
        })
        .replace("master_process on;", "master_process off;");
    // Comments may name `${UPPER_CASE}`; a directive left with one would not start.
    if let Some(line) = config
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .find(|directive| directive.contains("${"))
    {
        return Err(format!("{} has a value not filled in: {line}", template.display()).into());
    }
    config.push('\n');
    let path = run_dir.join("nginx.conf");
    std::fs::write(&path, config)?;
    Ok(vec![
        "nginx".into(),
        "-c".into(),
        path.display().to_string(),
        "-p".into(),
        run_dir.display().to_string(),
    ])
}

/// What a counted run does between start-up and shutdown.
#[derive(Debug, Clone, Copy)]
enum Load {
    Requests(usize),
    /// Nothing, for this long.
    Idle(Duration),
}

struct Counted {
    instructions: u64,
    /// How long the load took.
    wall: Duration,
}

/// Starts `command` under cachegrind, applies `load`, stops it gracefully and reads how many
/// instructions it executed.
fn count(target: &str, command: &[String], work: &Path, port: u16, load: Load) -> Result<Counted> {
    let log = work.join(format!("{target}-cachegrind.log"));
    // Pinned to one CPU as the harness pins it: the gateway then runs tokio's current-thread
    // scheduler, as it does in the `proxies` bench.
    let mut child = Command::new("taskset")
        .args(["-c", "0", "valgrind", "--tool=cachegrind", "--cache-sim=no"])
        .arg(format!(
            "--cachegrind-out-file={}",
            work.join(format!("{target}.cachegrind")).display()
        ))
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let result = apply(port, load);
    // SIGQUIT is nginx's graceful stop; the gateway drains on SIGTERM.
    let signal = if target == "nginx" { "-QUIT" } else { "-TERM" };
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    child.wait()?;
    let wall = result?;
    let text = std::fs::read_to_string(&log)?;
    let instructions = instructions_in(&text)
        .ok_or_else(|| format!("no instruction count in {}:\n{text}", log.display()))?;
    Ok(Counted { instructions, wall })
}

/// Waits for the proxy to answer, then sends the requests (or waits), and says how long that
/// took.
fn apply(port: u16, load: Load) -> Result<Duration> {
    wait_until(|| get(port, "/api/users/1").is_ok_and(|status| status == 200))?;
    let started = Instant::now();
    match load {
        Load::Idle(wall) => std::thread::sleep(wall),
        Load::Requests(requests) => {
            let workers: Vec<_> = (0..CONNECTIONS)
                .map(|worker| {
                    let share =
                        requests / CONNECTIONS + usize::from(worker < requests % CONNECTIONS);
                    std::thread::spawn(move || send(port, share))
                })
                .collect();
            for worker in workers {
                worker.join().map_err(|_| "a client thread panicked")??;
            }
        }
    }
    Ok(started.elapsed())
}

/// `count` GETs over one keep-alive connection; every answer must be a 200.
fn send(port: u16, count: usize) -> Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    for _ in 0..count {
        let status = exchange(&mut writer, &mut reader, port, "/api/users/1")?;
        if status != 200 {
            return Err(format!("the proxy answered {status}").into());
        }
    }
    Ok(())
}

/// One GET on its own connection; its status.
fn get(port: u16, path: &str) -> Result<u16> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    exchange(&mut writer, &mut reader, port, path)
}

/// Writes a GET and reads its answer (status line, headers, a `Content-Length` body).
fn exchange(
    writer: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    port: u16,
    path: &str,
) -> Result<u16> {
    write!(
        writer,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-api-key: {API_KEY}\r\n\r\n"
    )?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err("the connection closed mid-answer".into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

/// Retries `ready` for up to 60 s (a process starting under valgrind is slow).
fn wait_until(mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if Instant::now() > deadline {
            return Err("a process did not answer within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The `I refs` total of cachegrind's summary (`==PID== I   refs:      48,161,317`).
fn instructions_in(log: &str) -> Option<u64> {
    log.lines()
        .find_map(|line| line.split_once("I   refs:"))
        .and_then(|(_, count)| count.trim().replace(',', "").parse().ok())
}

fn render(args: &Args, counts: &[Count]) -> String {
    let mut flags = Vec::new();
    if let Some(gateway) = &args.gateway {
        flags.push(format!("--gateway {}", gateway.display()));
    }
    if let Some(floor) = &args.floor {
        flags.push(format!("--floor {}", floor.display()));
    }
    flags.extend(
        args.floor_arg
            .iter()
            .map(|arg| format!("--floor-arg={arg}")),
    );
    if args.only.len() < 3 {
        let only: Vec<&str> = args.only.iter().map(|target| target.name()).collect();
        flags.push(format!("--only {}", only.join(",")));
    }
    let flags = match flags.is_empty() {
        true => String::new(),
        false => format!(" -- {}", flags.join(" ")),
    };
    let per_request = |target: &str| {
        counts
            .iter()
            .find(|count| count.target == target)
            .map_or(0, |count| count.per_request)
    };
    let ratio = |count: u64, of: u64| match of {
        0 => "-".to_owned(),
        of => format!("{:.2}", count as f64 / of as f64),
    };
    let (nginx, floor) = (per_request("nginx"), per_request("floor"));
    let rows: String = counts
        .iter()
        .map(|count| {
            format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                count.target,
                count.requests,
                count.loaded,
                count.idle,
                count.per_request,
                ratio(count.per_request, nginx),
                ratio(count.per_request, floor),
            )
        })
        .collect();
    format!(
        "Command: `cargo bench -p resilience-benches --bench instructions{flags}`\n\n\
         | target | requests | instructions, loaded run | instructions, idle run | per request | ratio to nginx | ratio to floor |\n\
         |---|---:|---:|---:|---:|---:|---:|\n{rows}"
    )
}
