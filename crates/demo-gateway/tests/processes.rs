//! The gateway and its services as real processes on 127.0.0.1: kill, hang and restart a
//! replica under continuous traffic and check what clients see.
//!
//! Processes need the real clock. Tests wait on traffic and state (so many requests answered, a
//! breaker in this state), each bounded by a timeout; they never sleep to let time pass.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demo_kit::testing::ServiceProcess;
use serde_json::{Value, json};
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_demo-gateway");
const KEY: &str = "test-key";
const OPERATOR: &str = "test-operator-key";
/// Bounds every wait, so a broken build fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

struct Cluster {
    dir: tempfile::TempDir,
    users: Vec<Option<ServiceProcess>>,
    orders: Option<ServiceProcess>,
    gateway: ServiceProcess,
    http: reqwest::Client,
}

fn users_process(
    dir: &tempfile::TempDir,
    name: &str,
    listen: &str,
    extra: &[&str],
) -> ServiceProcess {
    let db = dir.path().join("users.db");
    let mut args = vec![
        "users",
        "--listen",
        listen,
        "--db",
        db.to_str().unwrap(),
        "--replica",
        name,
    ];
    args.extend_from_slice(extra);
    ServiceProcess::spawn(BIN, &args)
}

impl Cluster {
    /// Two users replicas, the order service and a gateway in front, the gateway with `flags`.
    fn start(users_1_flags: &[&str], flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let users = vec![
            Some(users_process(&dir, "users-1", "127.0.0.1:0", users_1_flags)),
            Some(users_process(&dir, "users-2", "127.0.0.1:0", &[])),
        ];
        let orders_db = dir.path().join("orders.db");
        let orders = ServiceProcess::spawn(
            BIN,
            &[
                "orders",
                "--listen",
                "127.0.0.1:0",
                "--db",
                orders_db.to_str().unwrap(),
                "--replica",
                "orders",
            ],
        );
        let users_urls = users
            .iter()
            .map(|u| u.as_ref().unwrap().url(""))
            .collect::<Vec<_>>()
            .join(",");
        let orders_url = orders.url("");
        let mut args = vec![
            "--no-spawn",
            "--listen",
            "127.0.0.1:0",
            "--users",
            &users_urls,
            "--orders",
            &orders_url,
            "--api-key",
            KEY,
            "--admin-key",
            OPERATOR,
            "--rate-limit",
            "100000",
            "--rate-burst",
            "100000",
            "--breaker-open",
            "1s",
        ];
        args.extend_from_slice(flags);
        let gateway = ServiceProcess::spawn(BIN, &args);
        Self {
            dir,
            users,
            orders: Some(orders),
            gateway,
            http: reqwest::Client::new(),
        }
    }

    fn users_addr(&self, index: usize) -> String {
        self.users[index].as_ref().unwrap().addr().to_string()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.gateway.url(path))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap()
    }

    /// `GET path` with the operator key.
    async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.gateway.url(path))
            .header("x-api-key", OPERATOR)
            .send()
            .await
            .unwrap()
    }

    async fn breaker(&self, upstream: &str, endpoint_addr: &str) -> Value {
        let status: Value = self.admin_get("/admin/status").await.json().await.unwrap();
        status["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["service"] == upstream)
            .unwrap()["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["endpoint"].as_str().unwrap().ends_with(endpoint_addr))
            .unwrap()
            .clone()
    }

    async fn breaker_state(&self, upstream: &str, endpoint_addr: &str) -> String {
        self.breaker(upstream, endpoint_addr).await["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// What one client request saw.
#[derive(Debug, Clone)]
struct Seen {
    status: u16,
    served_by: String,
    /// When the client sent it.
    sent: Instant,
    took: Duration,
}

/// Clients sending `GET path` in a loop until stopped, counting what they see.
struct Traffic {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    count: watch::Receiver<usize>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(cluster: &Cluster, path: &str, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (counter, count) = watch::channel(0);
        let counter = Arc::new(counter);
        let url = cluster.gateway.url(path);
        let workers = (0..workers)
            .map(|_| {
                let (stop, seen, counter, url, http) = (
                    stop.clone(),
                    seen.clone(),
                    counter.clone(),
                    url.clone(),
                    cluster.http.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        let answer = http.get(&url).header("x-api-key", KEY).send().await;
                        let took = started.elapsed();
                        let seen_now = match answer {
                            Ok(response) => Seen {
                                status: response.status().as_u16(),
                                served_by: response
                                    .headers()
                                    .get("x-upstream-served-by")
                                    .map(|v| v.to_str().unwrap().to_owned())
                                    .unwrap_or_default(),
                                sent: started,
                                took,
                            },
                            Err(error) => Seen {
                                status: 0,
                                served_by: error.to_string(),
                                sent: started,
                                took,
                            },
                        };
                        let total = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(seen_now);
                            seen.len()
                        };
                        counter.send_replace(total);
                    }
                })
            })
            .collect();
        Self {
            stop,
            seen,
            count,
            workers,
        }
    }

    /// Waits until `more` further requests were answered.
    async fn wait_for(&mut self, more: usize) {
        let target = *self.count.borrow() + more;
        tokio::time::timeout(PATIENCE, self.count.wait_for(|n| *n >= target))
            .await
            .expect("traffic kept flowing")
            .unwrap();
    }

    fn since(&self, from: usize) -> Vec<Seen> {
        self.seen.lock().unwrap()[from..].to_vec()
    }

    fn total(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    async fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.await.unwrap();
        }
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

/// A bounded wait: [`check`](Self::check) fails the test once [`PATIENCE`] has passed.
struct Patience {
    until: Instant,
    what: &'static str,
}

impl Patience {
    fn new(what: &'static str) -> Self {
        Self {
            until: Instant::now() + PATIENCE,
            what,
        }
    }

    fn check(&self) {
        assert!(
            Instant::now() < self.until,
            "waited {PATIENCE:?} for {}",
            self.what
        );
    }
}

/// Sends traffic until `users-2`'s breaker is in `state`.
async fn until_breaker(cluster: &Cluster, traffic: &mut Traffic, endpoint: &str, state: &str) {
    let patience = Patience::new("a breaker state");
    while cluster.breaker_state("user-service", endpoint).await != state {
        patience.check();
        traffic.wait_for(10).await;
    }
}

/// Sends traffic until a request after `from` was served by `replica`.
async fn until_served_by(traffic: &mut Traffic, from: usize, replica: &str) {
    let patience = Patience::new("a replica to serve again");
    while !traffic
        .since(from)
        .iter()
        .any(|seen| seen.served_by == replica)
    {
        patience.check();
        traffic.wait_for(10).await;
    }
}

fn signal(process: &ServiceProcess, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &process.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_users_replica_under_load_fails_no_request_and_it_comes_back() {
    let mut cluster = Cluster::start(&[], &[]);
    let users_2 = cluster.users_addr(1);
    let mut traffic = Traffic::start(&cluster, "/api/users/1", 4);
    traffic.wait_for(50).await;

    // SIGKILL users-2 while requests are in flight.
    drop(cluster.users[1].take());
    let killed_at = traffic.total();
    until_breaker(&cluster, &mut traffic, &users_2, "open").await;
    traffic.wait_for(100).await;
    let while_down = traffic.since(killed_at);
    assert!(
        while_down.iter().all(|seen| seen.status == 200),
        "a client saw a failure: {while_down:?}"
    );

    // Restart it on the same port: after the open duration a probe closes the breaker.
    cluster.users[1] = Some(users_process(&cluster.dir, "users-2", &users_2, &[]));
    let restarted_at = traffic.total();
    until_served_by(&mut traffic, restarted_at, "users-2").await;
    assert_eq!(
        cluster.breaker_state("user-service", &users_2).await,
        "closed"
    );
    let breaker = cluster.breaker("user-service", &users_2).await;
    assert_eq!(breaker["last_transition"]["to"], "closed");

    let everything = traffic.stop().await;
    let failed: Vec<_> = everything
        .iter()
        .filter(|seen| seen.status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        everything.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_replica_is_cut_off_within_the_deadline_and_comes_back() {
    let deadline = Duration::from_secs(2);
    let cluster = Cluster::start(
        &[],
        &[
            "--attempt-timeout",
            "300ms",
            "--deadline",
            "2s",
            "--breaker-failures",
            "3",
        ],
    );
    let users_2 = cluster.users_addr(1);
    let mut traffic = Traffic::start(&cluster, "/api/users/1", 4);
    traffic.wait_for(20).await;

    // SIGSTOP: users-2 accepts connections (the kernel does) but never answers.
    let stopped = cluster.users[1].as_ref().unwrap();
    signal(stopped, "-STOP");
    let stopped_at = traffic.total();
    until_breaker(&cluster, &mut traffic, &users_2, "open").await;
    traffic.wait_for(40).await;
    let while_hung = traffic.since(stopped_at);
    assert!(
        while_hung.iter().all(|seen| seen.status == 200),
        "a client saw a failure: {while_hung:?}"
    );
    // Not a speed claim: the bound is the deadline itself, with a second of slack for the
    // machine, to show no request hung.
    let slowest = while_hung.iter().map(|seen| seen.took).max().unwrap();
    assert!(
        slowest < deadline + Duration::from_secs(1),
        "a request took {slowest:?}"
    );

    signal(stopped, "-CONT");
    let resumed_at = traffic.total();
    until_served_by(&mut traffic, resumed_at, "users-2").await;
    let everything = traffic.stop().await;
    assert!(
        everything.iter().all(|seen| seen.status == 200),
        "every request succeeded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_both_users_replicas_down_the_gateway_answers_503_at_once() {
    let attempt_timeout = Duration::from_secs(2);
    let mut cluster = Cluster::start(
        &[],
        &[
            "--attempt-timeout",
            "2s",
            "--deadline",
            "5s",
            "--breaker-failures",
            "2",
        ],
    );
    drop(cluster.users[0].take());
    drop(cluster.users[1].take());
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response = cluster.get("/api/users/1").await;
        let status = response.status().as_u16();
        statuses.push(status);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["code"].is_string(),
            "a JSON error body: {body}"
        );
        if status == 503 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|status| [502, 503].contains(status)),
        "{statuses:?}"
    );

    let started = Instant::now();
    let response = cluster.get("/api/users/1").await;
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable");
    // Rejected by open breakers, not by waiting for a timeout.
    assert!(took < attempt_timeout / 2, "took {took:?}");
    assert_eq!(cluster.get("/ready").await.status(), 503);
    assert_eq!(cluster.get("/health").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_order_service_the_aggregation_degrades() {
    let mut cluster = Cluster::start(&[], &[]);
    let full: Value = cluster
        .get("/api/users/1/orders")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(full["data"]["user"]["id"], 1);
    assert!(
        !full["data"]["orders"].as_array().unwrap().is_empty(),
        "{full}"
    );
    assert!(full.get("missing").is_none());

    drop(cluster.orders.take());
    let response = cluster.get("/api/users/1/orders").await;
    assert_eq!(response.status(), 200);
    let degraded: Value = response.json().await.unwrap();
    assert_eq!(degraded["data"]["user"]["id"], 1, "{degraded}");
    assert_eq!(degraded["data"]["orders"], json!([]));
    assert_eq!(degraded["missing"], json!(["orders"]));
    assert_eq!(degraded["errors"]["orders"]["code"], "bad_gateway");

    let missing_user = cluster.get("/api/users/424242/orders").await;
    assert_eq!(missing_user.status(), 404, "no user, no answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_with_an_idempotency_key_creates_one_user() {
    // users-1 answers every request 1.5 s late: the gateway's first attempt times out after 1 s
    // while users-1 still goes on to write, and the retry lands on users-2.
    let cluster = Cluster::start(
        &["--fault-latency-ms", "1500"],
        &["--attempt-timeout", "1s", "--deadline", "5s"],
    );
    let users_2 = cluster.users[1].as_ref().unwrap();
    let total = |page: Value| page["total"].as_i64().unwrap();
    let before = total(
        cluster
            .http
            .get(users_2.url("/users?limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );

    let created = cluster
        .http
        .post(cluster.gateway.url("/api/users"))
        .header("x-api-key", KEY)
        .header("idempotency-key", "signup-7f3a")
        .json(&json!({"name": "Margaret Hamilton", "email": "margaret.hamilton.idempotency@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.headers()["x-upstream-served-by"],
        "users-2",
        "the retry answered"
    );
    let id = created.json::<Value>().await.unwrap()["data"]["id"].clone();

    // users-1's own late write finishes before a request sent after it does.
    let users_1 = cluster.users[0].as_ref().unwrap();
    cluster
        .http
        .get(users_1.url("/health"))
        .send()
        .await
        .unwrap();
    let after = total(
        cluster
            .http
            .get(users_2.url("/users?limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(after, before + 1, "exactly one record");
    let status: Value = cluster
        .admin_get("/admin/status")
        .await
        .json()
        .await
        .unwrap();
    assert!(status["upstreams"][0]["retries"].as_u64().unwrap() >= 1);

    // The same key again is the same user, not a second one.
    let again = cluster
        .http
        .post(cluster.gateway.url("/api/users"))
        .header("x-api-key", KEY)
        .header("idempotency-key", "signup-7f3a")
        .json(&json!({"name": "Margaret Hamilton", "email": "margaret.hamilton.idempotency@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["data"]["id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answers_pass_through_the_gateway() {
    let cluster = Cluster::start(&[], &[]);
    let user = cluster.get("/api/users/1").await;
    assert_eq!(user.status(), 200);
    assert!(user.headers().contains_key("x-request-id"));
    let body: Value = user.json().await.unwrap();
    assert_eq!(body["service"], "user-service");
    assert_eq!(body["data"]["id"], 1);
    let order: Value = cluster.get("/api/orders/1").await.json().await.unwrap();
    assert_eq!(order["service"], "order-service");

    let filtered: Value = cluster
        .get("/api/orders?user_id=1&limit=5")
        .await
        .json()
        .await
        .unwrap();
    let items = filtered["data"]["items"].as_array().unwrap();
    assert!(
        !items.is_empty() && items.iter().all(|order| order["user_id"] == 1),
        "{filtered}"
    );
    assert_eq!(cluster.get("/api/orders?user_id=abc").await.status(), 400);

    let missing = cluster.get("/api/users/424242").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );

    let invalid = cluster
        .http
        .post(cluster.gateway.url("/api/users"))
        .header("x-api-key", KEY)
        .json(&json!({"name": "", "email": "not-an-email"}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    let error: Value = invalid.json().await.unwrap();
    assert_eq!(error["error"]["code"], "validation_failed");

    let malformed = cluster
        .http
        .post(cluster.gateway.url("/api/users"))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    let kept = cluster
        .http
        .get(cluster.gateway.url("/api/users/1"))
        .header("x-api-key", KEY)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-me-42");

    // A chunked body with no Content-Length is held to the same 64 KiB. Only a little over it:
    // the gateway answers 413 as soon as it has read past the limit and closes, and a client
    // still writing then fails with a broken pipe instead of reading the 413. 72 KiB fits the
    // loopback socket buffers, so the client has written it all before the answer comes.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..9).map(|_| Ok(vec![b' '; 8 * 1024])).collect();
    let chunked = cluster
        .http
        .post(cluster.gateway.url("/api/users"))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(chunked.status(), 413);
}

/// Sets users replica `index`'s fault injection (its `/admin/faults` answers loopback peers).
async fn set_faults(cluster: &Cluster, index: usize, faults: Value) {
    let replica = cluster.users[index].as_ref().unwrap();
    let response = cluster
        .http
        .put(replica.url("/admin/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_a_failure_routed_around_and_alone_a_504() {
    let deadline = Duration::from_secs(2);
    let cluster = Cluster::start(
        &[],
        &[
            "--attempt-timeout",
            "300ms",
            "--deadline",
            "2s",
            "--breaker-failures",
            "3",
        ],
    );
    const WORKERS: usize = 4;
    let users_2 = cluster.users_addr(1);
    let mut traffic = Traffic::start(&cluster, "/api/users/1", WORKERS);
    traffic.wait_for(20).await;

    // users-2 now sends its status, its headers and half its body, then nothing.
    let stalled_at = traffic.total();
    set_faults(&cluster, 1, json!({"stall_body": true})).await;
    let stalling_since = Instant::now();
    until_breaker(&cluster, &mut traffic, &users_2, "open").await;
    traffic.wait_for(40).await;
    let while_stalled = traffic.since(stalled_at);
    assert!(
        while_stalled.iter().all(|seen| seen.status == 200),
        "every answer is whole: {while_stalled:?}"
    );
    // Requests sent before the fault took hold (one per client at most) may have been answered
    // by users-2, and may land anywhere in the list: a slow one after several quick ones. Every
    // request sent once users-2 stalls its bodies is answered by users-1.
    let sent_while_stalling: Vec<&Seen> = while_stalled
        .iter()
        .filter(|seen| seen.sent >= stalling_since)
        .collect();
    assert!(
        sent_while_stalling.len() >= 40 - WORKERS,
        "{while_stalled:?}"
    );
    assert!(
        sent_while_stalling
            .iter()
            .all(|seen| seen.served_by == "users-1"),
        "after the switch, every answer is from users-1: {while_stalled:?}"
    );
    // Not a speed claim: the bound is the deadline itself, with a second of slack for the
    // machine, to show no request waited for the stalled body (the upstream would hold it for
    // a minute).
    let slowest = while_stalled.iter().map(|seen| seen.took).max().unwrap();
    assert!(
        slowest < deadline + Duration::from_secs(1),
        "a request took {slowest:?}"
    );
    let breaker = cluster.breaker("user-service", &users_2).await;
    assert!(
        breaker["failures"].as_u64().unwrap() >= 3,
        "a stalled body is a failure, not a success: {breaker}"
    );
    assert_eq!(
        traffic
            .stop()
            .await
            .iter()
            .filter(|s| s.status != 200)
            .count(),
        0
    );

    // With every replica stalling, the client never gets a 502 after the upstream gives up:
    // a 504 when its time is spent, or, when the stalled attempts (and their hedged copies,
    // which count as failures once abandoned) trip the last breaker before the deadline, a 503
    // at once. Which of the two comes first depends on whether the hedge fired, so the test
    // asks the breaker which one it must be.
    set_faults(&cluster, 0, json!({"stall_body": true})).await;
    let response = cluster.get("/api/users/1").await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let users_1 = cluster.users_addr(0);
    let users_1_state = cluster.breaker("user-service", &users_1).await["state"].clone();
    match status.as_u16() {
        504 => assert_eq!(body["error"]["code"], "gateway_timeout", "{body}"),
        503 => {
            assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
            assert_eq!(
                users_1_state, "open",
                "a 503 only once the last breaker opened: {body}"
            );
        }
        other => panic!("{other}: {body}"),
    }
}

/// `POST /admin/breakers/{users@http://addr}/action` with the operator key; the new state.
async fn breaker_action(cluster: &Cluster, endpoint_addr: &str, action: &str) -> String {
    let name = format!("users@http://{endpoint_addr}");
    let encoded = name
        .replace('@', "%40")
        .replace(':', "%3A")
        .replace('/', "%2F");
    let answer: Value = cluster
        .http
        .post(
            cluster
                .gateway
                .url(&format!("/admin/breakers/{encoded}/{action}")),
        )
        .header("x-api-key", OPERATOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["breaker"], name.as_str(), "{answer}");
    answer["state"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forcing_a_replica_open_sends_every_request_to_the_other_and_reset_brings_it_back() {
    let cluster = Cluster::start(&[], &[]);
    let users_2 = cluster.users_addr(1);
    let mut traffic = Traffic::start(&cluster, "/api/users/1", 2);
    until_served_by(&mut traffic, 0, "users-2").await;

    assert_eq!(
        breaker_action(&cluster, &users_2, "force-open").await,
        "forced_open"
    );
    let forced_at = traffic.total();
    traffic.wait_for(100).await;
    // Requests that were already past the balancer may still finish on users-2.
    let after = traffic.since(forced_at + 2);
    assert!(
        after
            .iter()
            .all(|seen| seen.status == 200 && seen.served_by == "users-1"),
        "after force-open: {after:?}"
    );

    assert_eq!(breaker_action(&cluster, &users_2, "reset").await, "closed");
    let reset_at = traffic.total();
    until_served_by(&mut traffic, reset_at, "users-2").await;
    let everything = traffic.stop().await;
    assert!(everything.iter().all(|seen| seen.status == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_reports_a_killed_replica_s_breaker_opening_with_its_reason() {
    use futures::StreamExt;
    let mut cluster = Cluster::start(&[], &[]);
    let users_2 = cluster.users_addr(1);
    let response = cluster.admin_get("/admin/breakers/events").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut traffic = Traffic::start(&cluster, "/api/users/1", 2);
    traffic.wait_for(20).await;

    drop(cluster.users[1].take());
    let mut buffer = String::new();
    let patience = Patience::new("a transition event");
    let transition = loop {
        patience.check();
        let chunk = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("an event within the patience")
            .expect("the stream goes on")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        let mut found = None;
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.strip_prefix("event: transition\ndata: ") {
                let data: Value = serde_json::from_str(data.trim()).unwrap();
                if data["breaker"].as_str().unwrap().ends_with(&users_2) && data["to"] == "open" {
                    found = Some(data);
                }
            }
        }
        if let Some(data) = found {
            break data;
        }
    };
    assert_eq!(transition["from"], "closed");
    assert!(
        transition["reason"]
            .as_str()
            .unwrap()
            .ends_with("consecutive failures"),
        "{transition}"
    );
    traffic.stop().await;
}
