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

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

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
}

impl ChildSpec {
    /// The command line that starts it, for the banner ("restart it with ...").
    pub fn command_line(&self, program: &Path) -> String {
        format!("{} {}", program.display(), self.args().join(" "))
    }

    fn args(&self) -> Vec<String> {
        vec![
            self.service.to_owned(),
            "--listen".to_owned(),
            self.listen.to_string(),
            "--db".to_owned(),
            self.db.display().to_string(),
            "--replica".to_owned(),
            self.name.clone(),
        ]
    }

    fn child_args(&self) -> Vec<String> {
        let mut args = self.args();
        args.push("--exit-with-parent".to_owned());
        args
    }
}

/// A started child.
#[derive(Debug)]
pub struct Running {
    /// What was started.
    pub spec: ChildSpec,
    /// Its process id.
    pub pid: u32,
    /// Where it listens (the real port, if the spec asked for port 0).
    pub addr: SocketAddr,
    child: Child,
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
    Ok(Running {
        spec,
        pid,
        addr: announced,
        child,
    })
}

impl Running {
    /// Asks the child to stop (SIGTERM), waits for it to drain, and kills it if it does not.
    pub async fn stop(mut self) {
        let name = self.spec.name.clone();
        // Closing stdin is the stop signal every child obeys; it also works where SIGTERM
        // cannot be sent.
        drop(self.child.stdin.take());
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => tracing::info!(child = %name, %status, "stopped"),
            Ok(Err(error)) => tracing::warn!(child = %name, %error, "could not wait for the child"),
            Err(_) => {
                tracing::warn!(child = %name, "did not stop in time; killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}

/// Completes when this process's stdin closes: the parent that started it is gone.
pub async fn parent_gone() {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
