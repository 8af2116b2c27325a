//! Real-process tests of the built `demo-orders` binary on 127.0.0.1 with an OS-picked port.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::time::Duration;

use demo_kit::testing::ServiceProcess;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_demo-orders");

fn start(db: &std::path::Path, extra: &[&str]) -> ServiceProcess {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
        "--replica",
        "orders-1",
    ];
    args.extend_from_slice(extra);
    ServiceProcess::spawn(BIN, &args)
}

#[tokio::test]
async fn serves_seed_data_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orders.db");
    let mut p = start(&db, &[]);
    let client = reqwest::Client::new();
    let res = client.get(p.url("/orders/1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-served-by"], "orders-1");

    // An idempotent POST repeated over the wire is stored once.
    let body =
        json!({"user_id": 2, "items": [{"name": "Tape", "quantity": 4, "unit_price_cents": 250}]});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let res = client
            .post(p.url("/orders"))
            .header("Idempotency-Key", "once")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        assert_eq!(created["total_cents"], 1_000);
        ids.push(created["id"].as_i64().unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]));

    p.terminate();
    let status = p
        .wait_timeout(Duration::from_secs(30))
        .expect("no exit after SIGTERM");
    assert!(status.success(), "{status}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let orders: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orders, 3);
}

#[tokio::test]
async fn fault_flags_make_requests_fail_until_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(
        &dir.path().join("orders.db"),
        &["--fault-failure-rate", "1.0"],
    );
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(p.url("/orders/1"))
            .send()
            .await
            .unwrap()
            .status(),
        500
    );
    let res = client
        .put(p.url("/admin/faults"))
        .json(&json!({"failure_rate": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        client
            .get(p.url("/orders/1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn help_explains_every_flag() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--db",
        "--replica",
        "--db-pool",
        "--fault-latency-ms",
        "--fault-failure-rate",
        "127.0.0.1:8082",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}
