//! A throwaway etcd server for tests: Debian's `etcd` (package `etcd-server`) as a child
//! process on 127.0.0.1 and two free ports, its data in a temporary directory, polled on
//! `/health` until it serves. Dropping [`TestEtcd`] kills it by its PID and reaps it.
//!
//! Without the binary, [`TestEtcd::start`] panics when `CI` is set and otherwise prints a
//! "skipping" line and returns `None`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::servers;

/// An etcd server for one test.
#[derive(Debug)]
pub struct TestEtcd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TestEtcd {
    /// Starts etcd and waits until it answers `/health`; `None` when etcd is not installed
    /// and `CI` is not set.
    ///
    /// # Panics
    /// When etcd is missing and `CI` is set; when it cannot be started.
    pub fn start() -> Option<Self> {
        let program = servers::find_or_skip("etcd", "etcd-server")?;
        let dir =
            tempfile::tempdir().unwrap_or_else(|err| panic!("cannot create a temp dir: {err}"));
        // A port found free can be taken before etcd binds it: try a few times.
        for _ in 0..5 {
            let (port, peer) = (servers::free_port(false), servers::free_port(false));
            let client_url = format!("http://127.0.0.1:{port}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let mut child = Command::new(&program)
                .arg("--name=test")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=test={peer_url}"))
                .arg("--log-level=error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start {}: {err}", program.display()));
            if servers::wait_ready(&program, &mut child, || healthy(port)) {
                return Some(Self {
                    child,
                    port,
                    _dir: dir,
                });
            }
            servers::stop(&mut child);
        }
        panic!("etcd did not start");
    }

    /// `HOST:PORT` of its client URL, for `etcd://HOST:PORT/PREFIX`.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        servers::stop(&mut self.child);
    }
}

/// Whether etcd on `port` answers `GET /health` with `"health":"true"`.
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.contains("\"health\":\"true\"")
}
