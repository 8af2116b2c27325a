//! One service started by a bench as a child process, and always stopped again.
//!
//! A [`ServiceProcess`] is a guard: dropping it kills the child by its PID and reaps it, so a
//! bench that fails or panics leaves nothing running. The child's stdin is a pipe the guard holds;
//! services started with `--exit-with-parent` also stop if the bench itself is killed outright
//! (the pipe closes), where no `Drop` runs. Signals go through the `kill` command, since the
//! workspace forbids the `unsafe` an FFI call would need.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::Result;

/// How long a service may take to print its `listening on` line.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// A signal sent with the `kill` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGKILL: the process dies at once, without closing anything cleanly.
    Kill,
    /// SIGSTOP: the process freezes; the kernel still accepts connections for it.
    Stop,
    /// SIGCONT: a stopped process runs again.
    Cont,
}

impl Signal {
    /// The `kill` command's argument for this signal.
    pub fn as_arg(self) -> &'static str {
        match self {
            Self::Kill => "-KILL",
            Self::Stop => "-STOP",
            Self::Cont => "-CONT",
        }
    }
}

/// A running child process that announced the address it listens on.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    child: Child,
    addr: SocketAddr,
    /// Held open so that `--exit-with-parent` services live as long as the guard.
    _stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl ServiceProcess {
    /// Starts `program` with `args` (which should include `--listen ADDR`), its stderr appended
    /// to `log`, and waits for its [`demo_kit::LISTENING_PREFIX`] line on stdout.
    ///
    /// `RUST_LOG` is `warn` unless the caller's environment sets it: request logs would cost
    /// the servers CPU that the bench is measuring.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Result<Self> {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|err| format!("cannot open {}: {err}", log.display()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot start {name} ({}): {err}", program.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout was piped above");
        // The guard exists from here on, so every early return below kills the child.
        let mut process = Self {
            name: name.to_owned(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            _stdin: stdin,
            log: log.to_path_buf(),
        };
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the child's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut announced = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !announced {
                    if let Some(addr) = line.strip_prefix(demo_kit::LISTENING_PREFIX) {
                        let _ = tx.send(addr.trim().to_owned());
                        announced = true;
                    }
                }
            }
        });
        let announced = rx.recv_timeout(STARTUP_PATIENCE).map_err(|_| {
            let status = process.child.try_wait().ok().flatten();
            format!(
                "{name} did not say where it listens (exit status {status:?}); its log ends:\n{}",
                process.log_tail()
            )
        })?;
        process.addr = announced
            .parse()
            .map_err(|err| format!("{name} announced a bad address {announced:?}: {err}"))?;
        Ok(process)
    }

    /// The name given at start (`users-2`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the child listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the child with the `kill` command.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let status = Command::new("kill")
            .args([signal.as_arg(), &self.pid().to_string()])
            .status()
            .map_err(|err| format!("cannot run kill: {err}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {} {} failed: {status}", signal.as_arg(), self.pid()).into())
        }
    }

    /// Sends SIGKILL and reaps the child, returning how it ended.
    pub fn kill_and_reap(&mut self) -> Result<ExitStatus> {
        self.signal(Signal::Kill)?;
        self.child
            .wait()
            .map_err(|err| format!("cannot reap {}: {err}", self.name).into())
    }

    /// The last lines of the child's stderr log, for error messages.
    pub fn log_tail(&self) -> String {
        let Ok(mut file) = File::open(&self.log) else {
            return String::from("(no log)");
        };
        let len = file.metadata().map_or(0, |meta| meta.len());
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
        let mut tail = String::new();
        let _ = file.read_to_string(&mut tail);
        tail
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        // Already exited (or killed by the bench) is fine: kill() then fails and wait() reaps.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
