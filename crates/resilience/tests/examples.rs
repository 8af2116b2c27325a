//! Runs every example and checks that it exits 0 and prints what it is meant to show, so the
//! examples the README points to keep working.
//!
//! `cargo test` alone does not say where it put the example binaries (and `cargo test --test
//! examples` does not build them at all), so the test builds them with the cargo that runs it,
//! into the same target directory and with this build's features: a fresh build is a no-op, and
//! a stale binary can never be the one that passes.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The directory the example binaries are in, once built.
fn examples_dir() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // This test is <target>/<profile>/deps/examples-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
        let target_dir = profile_dir.parent().unwrap();
        // This build's features, so the library is not built a second time with others.
        let mut features = vec!["reqwest"];
        if cfg!(feature = "serde") {
            features.push("serde");
        }
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--frozen", "-p", "resilience", "--examples"])
            .arg("--features")
            .arg(features.join(","))
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            cargo.arg("--release");
        }
        let status = cargo.status().unwrap();
        assert!(status.success(), "building the examples failed: {status}");
        profile_dir.join("examples")
    })
}

/// Runs the example `name`, checks it succeeded, and returns what it printed.
fn run(name: &str) -> String {
    let binary = examples_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let output = Command::new(&binary).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{name} exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn assert_prints(stdout: &str, line: &str) {
    assert!(
        stdout.lines().any(|printed| printed.contains(line)),
        "expected a line with {line:?} in:\n{stdout}"
    );
}

#[test]
fn p2c_stops_sending_to_the_tripped_endpoint() {
    let stdout = run("p2c");
    assert_prints(&stdout, "circuit breaker b: closed -> open");
    assert_prints(&stdout, "endpoint b: 0 of the next 100 requests");
    assert_prints(&stdout, "every breaker open: no endpoint");
}

#[test]
fn hyper_util_answers_everything_after_a_server_stops() {
    let stdout = run("hyper_util");
    assert_prints(&stdout, "server 2 stopped");
    assert_prints(
        &stdout,
        "after the stop: 20 of 20 requests answered by server 1",
    );
    assert_prints(&stdout, "server 2's breaker: open");
}

#[test]
fn between_skips_the_open_endpoint_through_foreign_layers() {
    let stdout = run("between");
    assert_prints(
        &stdout,
        "trace: endpoint a answered 500 Internal Server Error",
    );
    assert_prints(&stdout, "a's breaker: open");
    assert_prints(&stdout, "requests went to b and 0 to a");
}

#[test]
fn https_trusts_only_the_generated_certificate() {
    let stdout = run("https");
    assert_prints(&stdout, "https answer: 200 OK \"hello over TLS, /users/1\"");
    assert_prints(&stdout, "without the test root: refused");
}

#[test]
fn client_answers_everything_while_one_endpoint_fails() {
    let stdout = run("client");
    assert_prints(&stdout, "every one answered 200");
    assert_prints(
        &stdout,
        "after the trip: 20 of 20 requests answered by good, 0 reached bad",
    );
    assert_prints(&stdout, "bad's breaker: open;");
}

#[test]
fn service_fn_breaker_alone_refuses_at_once_when_open() {
    let stdout = run("service_fn");
    assert_prints(
        &stdout,
        "request 0: user 0 not found after 1 attempt; breaker closed with 0 failures",
    );
    assert_prints(&stdout, "after 3 attempts; breaker open");
    // Each later request: refused by the open breaker itself, before any timeout.
    for id in 3..6 {
        let prefix = format!("request {id}: ");
        assert!(
            stdout.lines().any(|line| line.starts_with(&prefix)
                && line.contains("(CircuitOpen from users, at once: true")),
            "expected request {id} to fail at once with CircuitOpen in:\n{stdout}"
        );
    }
    assert_prints(&stdout, "while open: 0 calls reached the service");
}

#[test]
fn p2c_retry_behind_a_buffer_fails_fast_with_every_breaker_open() {
    let stdout = run("p2c_retry");
    assert_prints(&stdout, "circuit breaker c: closed -> open");
    assert_prints(&stdout, "every one answered 200");
    assert_prints(&stdout, "endpoint c: 0 of the next 30 requests");
    assert_prints(&stdout, "(NoAvailableEndpoint, at once: true");
}
