//! Real-process tests: the built `demo-users` binary, on 127.0.0.1 with a port picked by the
//! OS, with temporary database files. Each child is killed when its guard drops, even when an
//! assertion fails.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use demo_kit::testing::ServiceProcess;
use demo_kit::testing::postgres::TestDatabase;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_demo-users");

fn replica(db: &Path, name: &str, extra: &[&str]) -> ServiceProcess {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
        "--replica",
        name,
    ];
    args.extend_from_slice(extra);
    ServiceProcess::spawn(BIN, &args)
}

/// Starts two replicas on one fresh database file at the same moment (so their schema set-up
/// and seeding race).
fn two_replicas(db: &Path) -> (ServiceProcess, ServiceProcess) {
    std::thread::scope(|s| {
        let a = s.spawn(|| replica(db, "users-1", &[]));
        let b = s.spawn(|| replica(db, "users-2", &[]));
        (a.join().unwrap(), b.join().unwrap())
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn create(client: &reqwest::Client, base: &ServiceProcess, n: usize) -> reqwest::Response {
    client
        .post(base.url("/users"))
        .json(&json!({"name": format!("User {n}"), "email": format!("user{n}@example.com")}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_replicas_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    let (a, b) = two_replicas(&db);
    let client = client();

    // Seeded exactly once although both started together.
    for p in [&a, &b] {
        let page: Value = client
            .get(p.url("/users"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["total"], 3, "{page}");
        let res = client.get(p.url("/users/1")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }

    let res = create(&client, &a, 1).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-served-by"], "users-1");
    let created: Value = res.json().await.unwrap();

    // Read through the other replica at once.
    let res = client
        .get(b.url(&format!("/users/{}", created["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-served-by"], "users-2");
    assert_eq!(res.json::<Value>().await.unwrap(), created);

    // And a change through the second is seen by the first.
    let res = client
        .delete(b.url(&format!("/users/{}", created["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = client
        .get(a.url(&format!("/users/{}", created["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn two_replicas_share_one_postgres_database() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let url = database.url();
    // Started at the same moment, so their migrations and seeding race.
    let (a, b) = std::thread::scope(|s| {
        let start = |name: &'static str| {
            s.spawn(move || {
                ServiceProcess::spawn(
                    BIN,
                    &[
                        "--listen",
                        "127.0.0.1:0",
                        "--database-url",
                        url,
                        "--replica",
                        name,
                    ],
                )
            })
        };
        let (a, b) = (start("users-1"), start("users-2"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let client = client();

    let page: Value = client
        .get(b.url("/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 3, "seeded exactly once: {page}");

    let res = create(&client, &a, 1).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-served-by"], "users-1");
    let created: Value = res.json().await.unwrap();

    let res = client
        .get(b.url(&format!("/users/{}", created["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-served-by"], "users-2");
    assert_eq!(res.json::<Value>().await.unwrap(), created);

    // The same idempotent POST through both replicas at once makes one user.
    let posts = (0..10).map(|n| {
        let target = if n % 2 == 0 { &a } else { &b };
        client
            .post(target.url("/users"))
            .header("Idempotency-Key", "pg-retry-1")
            .json(&json!({"name": "Retry Me", "email": "retry@example.com"}))
            .send()
    });
    let mut ids = HashSet::new();
    for res in futures::future::join_all(posts).await {
        let res = res.unwrap();
        assert_eq!(res.status(), 201);
        ids.insert(res.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn concurrent_creates_over_both_replicas_are_all_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    let (a, b) = two_replicas(&db);
    let client = client();

    let creates = (0..200).map(|n| {
        let target = if n % 2 == 0 { &a } else { &b };
        let client = &client;
        async move {
            let res = create(client, target, n).await;
            assert_eq!(res.status(), 201, "create {n}");
            res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
        }
    });
    let ids: HashSet<i64> = futures::future::join_all(creates)
        .await
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 200, "ids must be distinct");

    let page: Value = client
        .get(b.url("/users?limit=1&offset=0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 203);
    let conn = rusqlite::Connection::open(&db).unwrap();
    for id in &ids {
        let found: i64 = conn
            .query_row("SELECT count(*) FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(found, 1, "user {id}");
    }
}

#[tokio::test]
async fn repeated_idempotency_key_over_both_replicas_makes_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    let (a, b) = two_replicas(&db);
    let client = client();
    let body = json!({"name": "Retry Me", "email": "retry@example.com"});

    // As a gateway retrying a POST would: the same key, to either replica, concurrently.
    let posts = (0..10).map(|n| {
        let target = if n % 2 == 0 { &a } else { &b };
        client
            .post(target.url("/users"))
            .header("Idempotency-Key", "gateway-retry-1")
            .json(&body)
            .send()
    });
    let mut ids = HashSet::new();
    for res in futures::future::join_all(posts).await {
        let res = res.unwrap();
        assert_eq!(res.status(), 201);
        ids.insert(res.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 1);
    let page: Value = client
        .get(a.url("/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 4);

    let res = client
        .post(b.url("/users"))
        .header("Idempotency-Key", "gateway-retry-1")
        .json(&json!({"name": "Other", "email": "other@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn sigterm_during_a_write_burst_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    // 100 ms of added latency keeps every writer's request in flight most of the time, so
    // SIGTERM lands while requests are being handled.
    let mut p = replica(&db, "users-1", &["--fault-latency-ms", "100"]);
    let client = client();
    let base = p.url("/users");
    let started = std::time::Instant::now();

    // Eight writers post until the service stops answering; each write that got a 2xx is
    // recorded with when it was sent and when it was answered.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            let base = base.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let body = json!({"name": "Burst", "email": format!("w{w}n{n}@example.com")});
                    let sent = started.elapsed();
                    match client.post(&base).json(&body).send().await {
                        Ok(res) if res.status().is_success() => {
                            let created: Value = res.json().await.unwrap();
                            let id = created["id"].as_i64().unwrap();
                            acknowledged.push((id, sent, started.elapsed()));
                        }
                        // Refused, reset or not 2xx: the service is going away.
                        _ => break,
                    }
                }
                acknowledged
            })
        })
        .collect();

    // Let the burst get going (two rounds of writes stored), then ask the service to stop.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ready = async {
        loop {
            let n: i64 = conn
                .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
                .unwrap();
            if n >= 3 + 16 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("burst did not start");
    let sigterm_at = started.elapsed();
    p.terminate();

    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let status = p
        .wait_timeout(Duration::from_secs(30))
        .expect("did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    // Requests in flight at SIGTERM were finished, not cut off.
    let drained = acknowledged
        .iter()
        .filter(|(_, sent, answered)| *sent < sigterm_at && *answered > sigterm_at)
        .count();
    assert!(
        drained >= 1,
        "no in-flight write was drained: {acknowledged:?}"
    );

    // The database opens cleanly and holds every acknowledged write.
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    for (id, _, _) in &acknowledged {
        let found: i64 = conn
            .query_row("SELECT count(*) FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(found, 1, "acknowledged user {id} is missing");
    }
    drop(conn);

    // And the service starts again on it.
    let again = replica(&db, "users-1", &[]);
    let res = client
        .get(again.url(&format!("/users/{}", acknowledged[0].0)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn fault_flags_make_requests_fail_until_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    let p = replica(&db, "users-1", &["--fault-failure-rate", "1"]);
    let client = client();
    for _ in 0..5 {
        let res = client.get(p.url("/users/1")).send().await.unwrap();
        assert_eq!(res.status(), 500);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "injected_fault");
    }
    let res = client
        .put(p.url("/admin/faults"))
        .json(&json!({"failure_rate": 0.0, "latency_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client.get(p.url("/users/1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
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
        "--database-url",
        "USERS_DATABASE_URL",
        "--replica",
        "--db-pool",
        "--fault-latency-ms",
        "--fault-failure-rate",
        "USERS_LISTEN",
        "127.0.0.1:8081",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}
