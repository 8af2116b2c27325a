//! The one-command demo: the services as child processes of their own, stopped with the gateway.
//!
//! Each child is this same binary re-run with a service subcommand, so `cargo run -p
//! demo-gateway` needs nothing else built. A child's stdin is a pipe from the gateway; a child
//! whose stdin closes shuts down. The pipe closes when the gateway exits for any reason, even
//! `SIGKILL`, so no child outlives it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a child may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child may take to drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One service to start.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Its name, e.g. `users-2`.
    pub name: String,
    /// `users` or `orders`.
    pub service: &'static str,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Its database file.
    pub db: PathBuf,
    /// Where it sends its spans (the gateway's `--otlp-endpoint`, passed on).
    pub otlp_endpoint: Option<String>,
}

impl ChildSpec {
    /// The command line that starts it, for the banner ("restart it with ...").
    pub fn command_line(&self, program: &Path) -> String {
        format!("{} {}", program.display(), self.args().join(" "))
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            self.service.to_owned(),
            "--listen".to_owned(),
            self.listen.to_string(),
            "--db".to_owned(),
            self.db.display().to_string(),
            "--replica".to_owned(),
            self.name.clone(),
        ];
        if let Some(endpoint) = &self.otlp_endpoint {
            args.extend(["--otlp-endpoint".to_owned(), endpoint.clone()]);
        }
        args
    }

    fn child_args(&self) -> Vec<String> {
        let mut args = self.args();
        args.push("--exit-with-parent".to_owned());
        args
    }
}

/// A started child, watched: it is reaped as soon as it exits, and an exit nobody asked for is
/// logged with the command that restarts it.
#[derive(Debug)]
pub struct Running {
    /// What was started.
    pub spec: ChildSpec,
    /// Its process id.
    pub pid: u32,
    /// Where it listens (the real port, if the spec asked for port 0).
    pub addr: SocketAddr,
    /// The child's stdin; dropping it is the stop signal.
    stdin: Option<ChildStdin>,
    stopping: Arc<AtomicBool>,
    kill: Option<oneshot::Sender<()>>,
    exited: JoinHandle<()>,
}

/// Starts `spec` and waits until it says where it listens.
pub async fn start(program: &Path, spec: ChildSpec) -> std::io::Result<Running> {
    let mut child = Command::new(program)
        .args(spec.child_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other(format!("{} exited at once", spec.name)))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
    let mut lines = BufReader::new(stdout).lines();
    let announced = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = line.strip_prefix(demo_kit::LISTENING_PREFIX) {
                return addr.parse::<SocketAddr>().map_err(std::io::Error::other);
            }
        }
        Err(std::io::Error::other(format!(
            "{} exited before it listened",
            spec.name
        )))
    })
    .await
    .map_err(|_| {
        std::io::Error::other(format!(
            "{} did not start listening within {START_TIMEOUT:?}",
            spec.name
        ))
    })??;
    // Keep reading so the child never blocks on a full stdout pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let stdin = child.stdin.take();
    // From here on the spec names where it really listens (it may have asked for port 0), so
    // "restart it with" starts it where the gateway expects it.
    let spec = ChildSpec {
        listen: announced,
        ..spec
    };
    let stopping = Arc::new(AtomicBool::new(false));
    let (kill, killed) = oneshot::channel();
    let exited = tokio::spawn(watch(child, spec.clone(), pid, stopping.clone(), killed));
    Ok(Running {
        spec,
        pid,
        addr: announced,
        stdin,
        stopping,
        kill: Some(kill),
        exited,
    })
}

/// Waits for the child to exit (or for the order to kill it) and says what happened.
async fn watch(
    mut child: Child,
    spec: ChildSpec,
    pid: u32,
    stopping: Arc<AtomicBool>,
    killed: oneshot::Receiver<()>,
) {
    let name = &spec.name;
    let status = tokio::select! {
        status = child.wait() => status,
        _ = killed => {
            tracing::warn!(child = %name, pid, "did not stop in time; killing it");
            let _ = child.kill().await;
            child.wait().await
        }
    };
    match status {
        Ok(status) if stopping.load(Ordering::SeqCst) => {
            tracing::info!(child = %name, pid, %status, "stopped")
        }
        Ok(status) => {
            let program = std::env::current_exe().unwrap_or_else(|_| "demo-gateway".into());
            tracing::warn!(child = %name, pid, %status, "exited; restart it with: {}", spec.command_line(&program));
        }
        Err(error) => tracing::warn!(child = %name, pid, %error, "could not wait for the child"),
    }
}

impl Running {
    /// Takes the child's exit from now on as asked for, not as a crash to report: Ctrl-C in a
    /// terminal reaches the whole process group, so the children drain and exit on their own
    /// while the gateway is still draining.
    pub fn expect_exit(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Asks the child to stop (its stdin closes), waits for it to drain, and kills it if it
    /// does not.
    pub async fn stop(mut self) {
        self.expect_exit();
        drop(self.stdin.take());
        if tokio::time::timeout(STOP_TIMEOUT, &mut self.exited)
            .await
            .is_err()
        {
            if let Some(kill) = self.kill.take() {
                let _ = kill.send(());
            }
            let _ = self.exited.await;
        }
    }
}

/// Completes when this process's stdin closes: the parent that started it is gone.
///
/// The read runs on a detached OS thread, not tokio's `stdin()`: that one reads on the blocking
/// pool, and runtime shutdown waits for a read that cannot be cancelled, so a child stopped by
/// SIGTERM would hang for as long as the gateway keeps the pipe open.
pub async fn parent_gone() {
    let (closed, on_close) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while let Ok(read) = std::io::Read::read(&mut stdin, &mut buffer) {
            if read == 0 {
                break;
            }
        }
        let _ = closed.send(());
    });
    // An error means the thread is gone without a word, which also means stdin is unusable.
    let _ = on_close.await;
}
