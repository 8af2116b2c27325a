//! Finding a server binary a test needs, and what to do when it is missing: the same rule as
//! for PostgreSQL — fail when `CI` is set (CI must never skip silently), else print a
//! "skipping" line and let the test return.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// `program` on `PATH` or in `/usr/sbin` (where Debian puts dnsmasq), or `None` after printing
/// why the test is skipped.
///
/// # Panics
/// When the program is missing and `CI` is set.
pub(crate) fn find_or_skip(program: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is required in CI but was not found: apt-get install {package}"
        );
        eprintln!("skipping: {program} not installed (apt-get install {package})");
    }
    found
}

/// A port that was free a moment ago, on TCP (`udp` false) or UDP.
pub(crate) fn free_port(udp: bool) -> u16 {
    let port = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|socket| socket.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr())
    };
    port.map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("cannot find a free port: {err}"))
}

/// Polls `ready` every 50 ms until it is true (returns true) or `child` exits (false); a
/// server that does neither within a minute is a failure.
pub(crate) fn wait_ready(name: &Path, child: &mut Child, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ready() {
            return true;
        }
        match child.try_wait() {
            Ok(Some(_)) => return false,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => panic!("{} did not get ready within a minute", name.display()),
            Err(err) => panic!("cannot wait for {}: {err}", name.display()),
        }
    }
}

/// Sends `signal` (e.g. `HUP`) to `pid` with the `kill` command (no FFI dependency).
pub(crate) fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|err| panic!("cannot run kill: {err}"));
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// Kills `child` by its PID and reaps it, so no process is left behind.
pub(crate) fn stop(child: &mut Child) {
    // Already exited is fine: kill() then fails and wait() reaps it.
    let _ = child.kill();
    let _ = child.wait();
}
