//! Test helpers shared by the services' tests: in-process calls through a
//! [`Stack`](crate::Stack) service, a guard around a spawned service process, throwaway
//! PostgreSQL ([`postgres`]), etcd ([`etcd`]) and DNS ([`dns`], dnsmasq) servers, and running
//! one test body against each database ([`Backend`],
//! [`for_each_backend!`](crate::for_each_backend)).
//!
//! These are for tests only (feature `testing`); they panic on failure, which is what a test
//! wants.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

use crate::LISTENING_PREFIX;
use crate::extract::PeerAddr;
use crate::stack::HttpService;

pub mod dns;
pub mod etcd;
pub mod otlp;
pub mod postgres;
mod servers;

/// The database one run of a test uses: a SQLite file in a temporary directory, or a fresh
/// database on the test process's PostgreSQL server. Keep it for as long as the service runs.
#[derive(Debug)]
pub enum Backend {
    /// A temporary directory for the SQLite file.
    Sqlite(tempfile::TempDir),
    /// A database on the test server.
    Postgres(postgres::TestDatabase),
}

impl Backend {
    /// A new temporary directory for a SQLite file.
    pub fn sqlite() -> Self {
        Self::Sqlite(
            tempfile::tempdir().unwrap_or_else(|err| panic!("cannot create a temp dir: {err}")),
        )
    }

    /// A fresh PostgreSQL database, or `None` when PostgreSQL is not installed (see
    /// [`postgres::TestDatabase::create`]).
    pub fn postgres() -> Option<Self> {
        postgres::TestDatabase::create().map(Self::Postgres)
    }

    /// The service flags that select this database: `--db DIR/file` or `--database-url URL`.
    pub fn args(&self, file: &str) -> Vec<String> {
        match self {
            Self::Sqlite(dir) => vec![
                "--db".to_owned(),
                dir.path().join(file).display().to_string(),
            ],
            Self::Postgres(db) => vec!["--database-url".to_owned(), db.url().to_owned()],
        }
    }
}

/// Turns each named `async fn NAME(backend: Backend)` into two tests, `NAME::sqlite` and
/// `NAME::postgres`, so one test body checks both databases. The Postgres one is skipped (with a
/// message) when PostgreSQL is not installed, and fails when `CI` is set (see
/// [`postgres::TestDatabase::create`]).
#[macro_export]
macro_rules! for_each_backend {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn sqlite() {
                super::$test($crate::testing::Backend::sqlite()).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(backend) = $crate::testing::Backend::postgres() {
                    super::$test(backend).await;
                }
            }
        }
    )+};
}

/// A buffered response.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON. Panics when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "response body is not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error.code` of a JSON error body, checking the body has the error shape.
    pub fn error_code(&self) -> String {
        let json = self.json();
        assert!(
            json["error"]["message"].is_string(),
            "not a JSON error body: {json}"
        );
        json["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {json}"))
            .to_owned()
    }
}

/// A request with `body`, sent as `application/json` when non-empty.
pub fn request(method: &str, uri: &str, body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
    let body = body.into();
    let mut builder = http::Request::builder().method(method).uri(uri);
    if !body.is_empty() {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    builder
        .body(Full::new(body))
        .unwrap_or_else(|err| panic!("bad test request {method} {uri}: {err}"))
}

/// A request with `value` as its JSON body.
pub fn json_request(
    method: &str,
    uri: &str,
    value: &serde_json::Value,
) -> http::Request<Full<Bytes>> {
    request(method, uri, value.to_string())
}

/// Marks `req` as coming from a loopback peer, as [`serve`](crate::serve) would for a local
/// connection.
pub fn from_loopback<B>(mut req: http::Request<B>) -> http::Request<B> {
    req.extensions_mut()
        .insert(PeerAddr(Some(SocketAddr::from(([127, 0, 0, 1], 50_000)))));
    req
}

/// Sends `req` through `service` in-process and buffers the answer.
pub async fn send<B>(service: &HttpService<B>, req: http::Request<B>) -> TestResponse
where
    B: Send + 'static,
{
    let res = match service.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .unwrap_or_else(|err| panic!("cannot read response body: {err}"))
        .to_bytes();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// A service binary running as a child process. Dropping it kills the process, so a failing
/// test leaves nothing behind.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServiceProcess {
    /// Starts `program` with `args` (which should include `--listen 127.0.0.1:0`) and waits (up
    /// to 60 s) for its [`LISTENING_PREFIX`] line. The child's stdout is drained in a thread; its
    /// stderr is inherited, quietened with `RUST_LOG=warn` unless the caller set `RUST_LOG`.
    pub fn spawn(program: impl AsRef<Path>, args: &[&str]) -> Self {
        Self::start(program.as_ref(), args, &[], None)
    }

    /// As [`spawn`](Self::spawn), with `env` set for the child and its stderr (its log lines)
    /// kept in the returned [`Logs`] instead of inherited.
    pub fn spawn_logged(
        program: impl AsRef<Path>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Self, Logs) {
        let logs = Logs::default();
        let process = Self::start(program.as_ref(), args, env, Some(logs.clone()));
        (process, logs)
    }

    fn start(program: &Path, args: &[&str], env: &[(&str, &str)], logs: Option<Logs>) -> Self {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(match logs {
                Some(_) => Stdio::piped(),
                None => Stdio::inherit(),
            });
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        command.envs(env.iter().copied());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", program.display()));
        if let Some(logs) = logs {
            let stderr = child.stderr.take().expect("stderr was piped above");
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    logs.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout was piped above");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sent {
                    continue;
                }
                if let Some(addr) = line.strip_prefix(LISTENING_PREFIX) {
                    let _ = tx.send(addr.trim().to_owned());
                    sent = true;
                }
            }
        });
        // Build the guard first, so that a panic below still kills the child.
        let mut process = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|err| {
                let status = process.child.try_wait();
                panic!(
                    "{} did not announce its address ({err}); exit status: {status:?}",
                    program.display()
                )
            });
        process.addr = addr
            .parse()
            .unwrap_or_else(|err| panic!("bad announced address {addr:?}: {err}"));
        process
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

    /// Sends SIGTERM (through the `kill` command, to avoid an FFI dependency).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|err| panic!("cannot run kill: {err}"));
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => return None,
                Err(err) => panic!("cannot wait for child: {err}"),
            }
        }
    }
}

/// The log lines (stderr) of a [`ServiceProcess::spawn_logged`] child, as they arrive.
#[derive(Debug, Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Logs {
    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The lines so far that contain `text`.
    pub fn containing(&self, text: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| line.contains(text))
            .collect()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        // Already exited is fine; kill() then fails and wait() reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
