//! The one-command demo: `demo-gateway` with no flags but free ports and a temporary data
//! directory starts the gateway and three services of its own, and none of them outlives it,
//! however it ends.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::process::{Command, Stdio};

use std::time::{Duration, Instant};
use support::{Demo, start_demo};

const BIN: &str = env!("CARGO_BIN_EXE_demo-gateway");

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Waits, bounded, for every one of `pids` to exit.
fn wait_for_exit(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|pid| alive(*pid)) {
        assert!(
            Instant::now() < deadline,
            "a process did not exit: {pids:?}"
        );
        std::thread::yield_now();
    }
}

async fn get(demo: &Demo, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", demo.url()))
        .header("x-api-key", &demo.key)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_its_services_and_stops_them_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut demo = start_demo(data.path());
    let names: Vec<&str> = demo
        .services
        .iter()
        .map(|(name, _, _)| name.as_str())
        .collect();
    assert_eq!(names, ["users-1", "users-2", "orders"]);
    assert!(
        demo.key.starts_with("demo-"),
        "a generated key is printed: {:?}",
        demo.key
    );

    let user = get(&demo, "/api/users/1").await;
    assert_eq!(user.status(), 200);
    let aggregated: serde_json::Value = get(&demo, "/api/users/1/orders")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(aggregated["data"]["user"]["id"], 1);
    assert!(data.path().join("users.db").exists() && data.path().join("orders.db").exists());

    // The operator key printed beside the client key opens /admin; the client key does not.
    assert!(
        demo.operator_key.starts_with("admin-"),
        "{:?}",
        demo.operator_key
    );
    let status = |key: String| {
        let url = format!("{}/admin/status", demo.url());
        async move {
            reqwest::Client::new()
                .get(url)
                .header("x-api-key", key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(demo.operator_key.clone()).await, 200);
    assert_eq!(status(demo.key.clone()).await, 403);

    // `kill <pid of users-2>`, as the banner suggests: it stops while the gateway runs on, and
    // clients still get answers.
    let users_2 = demo.services[1].2;
    let status = Command::new("kill")
        .args(["-TERM", &users_2.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_exit(&[users_2]);
    for _ in 0..10 {
        assert_eq!(get(&demo, "/api/users/1").await.status(), 200);
    }

    let status = Command::new("kill")
        .args(["-TERM", &demo.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = demo.child.wait().unwrap();
    assert!(exit.success(), "the gateway stopped cleanly: {exit}");
    let pids: Vec<u32> = demo.services.iter().map(|(_, _, pid)| *pid).collect();
    wait_for_exit(&pids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_outlives_a_killed_gateway() {
    let data = tempfile::tempdir().unwrap();
    let mut demo = start_demo(data.path());
    assert_eq!(get(&demo, "/api/users/1").await.status(), 200);
    demo.child.kill().unwrap();
    demo.child.wait().unwrap();
    let pids: Vec<u32> = demo.services.iter().map(|(_, _, pid)| *pid).collect();
    wait_for_exit(&pids);
}

#[test]
fn help_explains_every_flag() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--no-spawn",
        "--users",
        "--orders",
        "--data-dir",
        "--api-key",
        "--api-keys-file",
        "--admin-key",
        "--admin-key-file",
        "--rate-limit",
        "--rate-burst",
        "--attempt-timeout",
        "--deadline",
        "--max-attempts",
        "--breaker-failures",
        "--breaker-open",
        "--breaker-max-open",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    // Help is wrapped to the terminal's width, which differs between machines.
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("[env: GATEWAY_USERS="),
        "flags name their environment variables:\n{help}"
    );
}
