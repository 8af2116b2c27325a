//! A real DNS server for tests: Debian's `dnsmasq` as a child process on 127.0.0.1 and a free
//! UDP port, answering A/AAAA records from a hosts file the test writes, and SRV records given at
//! start ([`TestDns::start_with_services`]). [`TestDns::set_hosts`]
//! rewrites the file and sends SIGHUP, on which dnsmasq clears its cache and re-reads it, so a
//! test can change the answer while a client keeps asking.
//!
//! It reads no system configuration (`--conf-file=/dev/null`, `--no-hosts`, `--no-resolv`),
//! writes no pid file and never runs as the system service. Answers carry the TTL given to
//! [`TestDns::start`]. Dropping [`TestDns`] kills it by its PID and reaps it.
//!
//! Without the binary, [`TestDns::start`] panics when `CI` is set and otherwise prints a
//! "skipping" line and returns `None`.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::servers;

/// A dnsmasq server for one test.
#[derive(Debug)]
pub struct TestDns {
    child: Child,
    addr: SocketAddr,
    hosts: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestDns {
    /// Starts dnsmasq answering from `hosts` (lines of `/etc/hosts` form, `ADDRESS NAME`) with
    /// records of `ttl_seconds`, and waits until it answers. `None` when dnsmasq is not
    /// installed and `CI` is not set.
    ///
    /// # Panics
    /// When dnsmasq is missing and `CI` is set; when it cannot be started.
    pub fn start(hosts: &str, ttl_seconds: u32) -> Option<Self> {
        Self::start_with_services(hosts, &[], ttl_seconds)
    }

    /// As [`TestDns::start`], also answering the SRV records `services`, each
    /// `(SRV NAME, TARGET, PORT)` with priority 0 (targets are resolved from `hosts`). SRV
    /// records are fixed for the server's life: dnsmasq re-reads only the hosts file.
    ///
    /// # Panics
    /// As [`TestDns::start`].
    pub fn start_with_services(
        hosts: &str,
        services: &[(&str, &str, u16)],
        ttl_seconds: u32,
    ) -> Option<Self> {
        let program = servers::find_or_skip("dnsmasq", "dnsmasq")?;
        let dir =
            tempfile::tempdir().unwrap_or_else(|err| panic!("cannot create a temp dir: {err}"));
        let path = dir.path().join("hosts");
        write_readable(&dir, &path, hosts);
        for _ in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], servers::free_port(true)));
            let mut child = Command::new(&program)
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--no-hosts",
                ])
                .args(["--no-resolv", "--bind-interfaces", "--pid-file="])
                .arg("--listen-address=127.0.0.1")
                .arg(format!("--port={}", addr.port()))
                .arg(format!("--addn-hosts={}", path.display()))
                .arg(format!("--local-ttl={ttl_seconds}"))
                .args(
                    services
                        .iter()
                        .map(|(name, target, port)| format!("--srv-host={name},{target},{port}")),
                )
                .arg("--log-facility=-")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start {}: {err}", program.display()));
            if servers::wait_ready(&program, &mut child, || answers(addr)) {
                return Some(Self {
                    child,
                    addr,
                    hosts: path,
                    _dir: dir,
                });
            }
            servers::stop(&mut child);
        }
        panic!("dnsmasq did not start");
    }

    /// Where it listens (UDP and TCP), for a resolver's name server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the hosts file with `hosts` and makes dnsmasq re-read it (SIGHUP).
    pub fn set_hosts(&self, hosts: &str) {
        write_readable(&self._dir, &self.hosts, hosts);
        servers::signal(self.child.id(), "HUP");
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        servers::stop(&mut self.child);
    }
}

/// Writes `text` to `path` readable by everyone: dnsmasq drops root for `nobody` before it
/// re-reads the file on SIGHUP.
fn write_readable(dir: &tempfile::TempDir, path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let readable = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|err| panic!("cannot chmod {}: {err}", path.display()));
    };
    readable(dir.path(), 0o755);
    // Write a new file and rename it, so dnsmasq never reads half of it.
    let next = path.with_extension("next");
    std::fs::write(&next, text)
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", next.display()));
    readable(&next, 0o644);
    std::fs::rename(&next, path)
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
}

/// Whether a DNS server answers at `addr`: one hand-made query (`localhost.`, type A) and any
/// reply with its id counts.
fn answers(addr: SocketAddr) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    // Header: id 0x1234, recursion desired, one question; then the name, type A, class IN.
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x09localhost\x00");
    query.extend_from_slice(&[0, 1, 0, 1]);
    let mut reply = [0u8; 512];
    socket.send_to(&query, addr).is_ok()
        && matches!(socket.recv(&mut reply), Ok(n) if n >= 2 && reply[..2] == [0x12, 0x34])
}
