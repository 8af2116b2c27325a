//! A throwaway PostgreSQL server for tests, one per test process, and a fresh database for each
//! test on it.
//!
//! The server is made from the installed binaries (Debian's `postgresql` package puts them under
//! `/usr/lib/postgresql/*/bin`; elsewhere they are looked for on `PATH`): `initdb` into a
//! temporary directory, then `postgres` as a child process on 127.0.0.1 and a free port, with its
//! unix sockets in that directory, trust authentication and no fsync (the data is thrown away),
//! polled with `pg_isready` until it accepts connections. `initdb` and `postgres` refuse to run
//! as root, so when the tests do they run as the `postgres` user through `runuser`.
//!
//! Stopping is tied to use, not to the end of the process, because Rust runs no destructors for
//! statics: every [`TestDatabase`] holds a lease on the server, and when the last lease is
//! dropped (the last test using it has finished) the server is stopped with `pg_ctl stop`, and
//! reaped, and the next test starts it again on the same data directory. So when `cargo test` returns no
//! `postgres` process is left. For the case where the test process dies without unwinding
//! (SIGKILL, an abort), a small `sh` watchdog started with the server waits for the process's
//! end (its stdin, a pipe from the test process, closes), then stops the server if it still runs
//! and removes the directory.
//!
//! Without the binaries, [`TestDatabase::create`] panics when the `CI` environment variable is
//! set (CI must never skip silently) and otherwise prints a "skipping" line and returns `None`.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};

use super::servers;

/// Printed when a Postgres test is skipped outside CI.
pub const SKIP_MESSAGE: &str = "skipping: postgresql not installed (apt-get install postgresql)";

/// The binaries a server needs.
const PROGRAMS: [&str; 5] = ["initdb", "postgres", "pg_ctl", "pg_isready", "createdb"];

/// The one server of this test process, and how many tests use it.
static SERVER: Mutex<Server> = Mutex::new(Server {
    cluster: None,
    running: None,
    leases: 0,
});

#[derive(Debug)]
struct Server {
    /// The initialised data directory, made once per process.
    cluster: Option<Cluster>,
    /// The server while it runs.
    running: Option<Running>,
    /// Live [`TestDatabase`]s.
    leases: usize,
}

#[derive(Debug)]
struct Running {
    port: u16,
    /// `postgres`, or `runuser` running it.
    child: Child,
}

#[derive(Debug)]
struct Cluster {
    bin: PathBuf,
    /// The temporary directory: data, sockets and the server log.
    dir: PathBuf,
    /// `Some("postgres")` when the tests run as root.
    run_as: Option<&'static str>,
    /// The watchdog, which acts once this pipe closes; kept open for the life of the process.
    _watchdog: (Child, ChildStdin),
}

/// A fresh, empty database on the test server, which stays up at least as long as this value.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    _lease: Lease,
}

/// One test's hold on the server; the last one dropped stops it.
#[derive(Debug)]
struct Lease;

impl TestDatabase {
    /// Starts the server if needed and creates a database `t_<random>` on it.
    ///
    /// Returns `None`, after printing [`SKIP_MESSAGE`], when PostgreSQL is not installed and
    /// `CI` is not set.
    ///
    /// # Panics
    /// When PostgreSQL is not installed and `CI` is set; when the server cannot be set up.
    pub fn create() -> Option<Self> {
        let Some(bin) = find_binaries() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "PostgreSQL is required in CI but its binaries ({}) were found neither under \
                     /usr/lib/postgresql/*/bin nor on PATH: apt-get install postgresql",
                    PROGRAMS.join(", ")
                );
            }
            eprintln!("{SKIP_MESSAGE}");
            return None;
        };
        let mut guard = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
        let server = &mut *guard;
        let cluster = server.cluster.get_or_insert_with(|| Cluster::init(bin));
        let createdb = cluster.bin.join("createdb");
        // Stopped => running, for the first test or the first after a pause.
        let port = server.running.get_or_insert_with(|| cluster.start()).port;
        server.leases += 1;
        // The lease takes the lock when dropped, so the lock is released first.
        drop(guard);
        let lease = Lease;
        let name = format!("t_{:016x}", rand::random::<u64>());
        let out = output(Command::new(createdb).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            &name,
        ]));
        check(&out, "createdb");
        Some(Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/{name}"),
            _lease: lease,
        })
    }

    /// `postgres://postgres@127.0.0.1:PORT/t_...`, for `--database-url`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut server = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
        server.leases -= 1;
        if server.leases > 0 {
            return;
        }
        // Running => stopped: the last test using the server has finished.
        let server = &mut *server;
        if let (Some(cluster), Some(running)) = (&server.cluster, server.running.take()) {
            cluster.stop(running);
        }
    }
}

impl Cluster {
    /// `initdb` into a new temporary directory, and the watchdog.
    fn init(bin: PathBuf) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("demo-kit-postgres-")
            .tempdir()
            .unwrap_or_else(|err| panic!("cannot create a directory for PostgreSQL: {err}"))
            .keep();
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            check(
                &output(Command::new("chown").args(["-R", user]).arg(&dir)),
                "chown",
            );
        }
        let cluster = Self {
            _watchdog: watchdog(&dir, &bin, run_as),
            bin,
            dir,
            run_as,
        };
        let out = output(
            cluster
                .command("initdb")
                .arg("-D")
                .arg(cluster.data())
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ]),
        );
        check(&out, "initdb");
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program` from the PostgreSQL binaries, run as the server's user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    /// Starts the server, as a child of this process (so this process reaps it and no zombie
    /// is left), on a free port, and waits until it accepts connections. A port found free can
    /// be taken by another process before the server binds it, so a server that exits during
    /// start-up is tried again on another port, a few times.
    fn start(&self) -> Running {
        let log_path = self.dir.join("server.log");
        for _ in 0..5 {
            let port = servers::free_port(false);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap_or_else(|err| panic!("cannot open the server log: {err}"));
            let stderr = log
                .try_clone()
                .unwrap_or_else(|err| panic!("cannot open the server log: {err}"));
            let mut child = self
                .command("postgres")
                .arg("-D")
                .arg(self.data())
                .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
                .arg("-k")
                .arg(&self.dir)
                .args(["-c", "fsync=off", "-c", "max_connections=200"])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start postgres: {err}"));
            if self.wait_ready(port, &mut child) {
                return Running { port, child };
            }
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("postgres did not start; server log:\n{log}");
    }

    /// Polls `pg_isready` until the server on `port` accepts connections (true) or exits
    /// (false), within [`servers::wait_ready`]'s bound.
    fn wait_ready(&self, port: u16, child: &mut Child) -> bool {
        let port = port.to_string();
        servers::wait_ready(&self.bin.join("postgres"), child, || {
            output(Command::new(self.bin.join("pg_isready")).args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "1",
            ]))
            .status
            .success()
        })
    }

    /// Stops the server (fast: open sessions are ended) and reaps it.
    fn stop(&self, mut running: Running) {
        let out = output(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "fast", "-w", "stop"]),
        );
        if !out.status.success() {
            eprintln!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = running.child.kill();
        }
        let _ = running.child.wait();
    }
}

/// Starts the `sh` watchdog: it ignores the signals a terminal sends the whole process group,
/// blocks reading its stdin, and once that pipe closes (this process has ended, however it
/// ended) stops the server if it still runs and removes `dir`.
fn watchdog(dir: &Path, bin: &Path, run_as: Option<&str>) -> (Child, ChildStdin) {
    let mut stop: Vec<String> = Vec::new();
    if let Some(user) = run_as {
        stop.extend(["runuser", "-u", user, "--"].map(String::from));
    }
    stop.push(bin.join("pg_ctl").display().to_string());
    stop.extend(["-D", &dir.join("data").display().to_string()].map(String::from));
    stop.extend(["-m", "immediate", "stop"].map(String::from));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' INT TERM HUP; read -r _; dir=$1; shift; "$@" >/dev/null 2>&1; rm -rf "$dir""#)
        .arg("watchdog")
        .arg(dir)
        .args(&stop)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start the PostgreSQL watchdog: {err}"));
    let stdin = child.stdin.take().expect("stdin was piped above");
    (child, stdin)
}

/// The directory holding every program in [`PROGRAMS`]: the newest Debian install, else `PATH`.
fn find_binaries() -> Option<PathBuf> {
    let has_all = |dir: &Path| PROGRAMS.iter().all(|p| dir.join(p).is_file());
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|dir| has_all(dir))
        .collect();
    // Newest major version first ("9.6" < "15": compare numerically).
    debian.sort_by_key(|dir| {
        dir.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.split('.').next())
            .and_then(|major| major.parse::<u32>().ok())
            .unwrap_or(0)
    });
    debian.pop().or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|dir| has_all(dir)))
    })
}

fn is_root() -> bool {
    let out = output(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn output(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"))
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
