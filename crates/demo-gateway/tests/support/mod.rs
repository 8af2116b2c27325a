//! The one-command demo started for a test: `demo-gateway` with free ports and a temporary data
//! directory, and what its banner printed. Shared by the demo and dashboard tests; each uses
//! part of it.

#![allow(dead_code)] // each test binary reads a different part of the banner

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_demo-gateway");

/// The demo running, with what its banner said. Dropping it kills the gateway and, for a test
/// that failed half-way, every service it started, by PID.
pub(crate) struct Demo {
    /// The gateway process.
    pub(crate) child: Child,
    /// `HOST:PORT` the gateway listens on.
    pub(crate) addr: String,
    /// The client API key.
    pub(crate) key: String,
    /// The operator key.
    pub(crate) operator_key: String,
    /// The dashboard's URL, with the operator key.
    pub(crate) dashboard: String,
    /// (name, url, pid) of each service.
    pub(crate) services: Vec<(String, String, u32)>,
    /// The command the banner gives to start users-2 again.
    pub(crate) restart_users_2: String,
}

impl Demo {
    /// `http://HOST:PORT` of the gateway.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for (_, _, pid) in &self.services {
            // Normally long gone with the gateway; this is for a test that failed half-way.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Starts the demo on free ports with its data in `data_dir` and reads its banner up to the
/// line saying where the gateway listens.
pub(crate) fn start_demo(data_dir: &std::path::Path) -> Demo {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--users",
            "http://127.0.0.1:0,http://127.0.0.1:0",
            "--orders",
            "http://127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut demo = Demo {
        child,
        addr: String::new(),
        key: String::new(),
        operator_key: String::new(),
        dashboard: String::new(),
        services: Vec::new(),
        restart_users_2: String::new(),
    };
    let mut lines = stdout.lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [name, url, "pid", pid] if name.starts_with("users") || name.starts_with("orders") => {
                demo.services
                    .push((name.to_string(), url.to_string(), pid.parse().unwrap()));
            }
            ["API", "key", key] => demo.key = key.to_string(),
            ["Operator", "key", key, ..] => demo.operator_key = key.to_string(),
            ["Dashboard", url] => demo.dashboard = url.to_string(),
            _ => {}
        }
        if let Some(command) = line.strip_prefix("Bring it back:") {
            demo.restart_users_2 = command.trim().to_owned();
        }
        if let Some(addr) = line.strip_prefix(demo_kit::LISTENING_PREFIX) {
            demo.addr = addr.to_owned();
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    demo
}
