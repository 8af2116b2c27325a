//! Endpoints that change while the gateway runs, with real servers: a DNS server (dnsmasq)
//! whose answer goes from one users replica to two and back, and etcd, where replicas register
//! themselves, one is SIGKILLed (its lease expires) and started again.
//!
//! dnsmasq and etcd are Debian packages (`.ci/run` installs them); without them these tests
//! are skipped with a message, or fail when `CI` is set. Every process is stopped by its PID.
//! Waits are bounded polls on state; a request goes out on every poll, and every one of them
//! must succeed.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use demo_kit::testing::ServiceProcess;
use demo_kit::testing::dns::TestDns;
use demo_kit::testing::etcd::TestEtcd;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_demo-gateway");
const KEY: &str = "test-key";
const OPERATOR: &str = "test-operator-key";
/// Bounds every wait, so a broken build fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

fn users(dir: &tempfile::TempDir, name: &str, listen: &str, extra: &[&str]) -> ServiceProcess {
    let db = dir.path().join("users.db");
    let mut args = vec!["users", "--listen", listen, "--db", db.to_str().unwrap()];
    args.extend_from_slice(&["--replica", name]);
    args.extend_from_slice(extra);
    ServiceProcess::spawn(BIN, &args)
}

fn orders(dir: &tempfile::TempDir) -> ServiceProcess {
    let db = dir.path().join("orders.db");
    ServiceProcess::spawn(
        BIN,
        &[
            "orders",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
        ],
    )
}

fn gateway(users: &str, orders: &ServiceProcess, extra: &[&str]) -> ServiceProcess {
    let orders = orders.url("");
    let mut args = vec!["--no-spawn", "--listen", "127.0.0.1:0", "--users", users];
    args.extend_from_slice(&["--orders", &orders, "--api-key", KEY]);
    args.extend_from_slice(&["--admin-key", OPERATOR]);
    args.extend_from_slice(&["--rate-limit", "100000", "--rate-burst", "100000"]);
    // No hedging: every call an endpoint's breaker counts is then one answered request.
    args.push("--no-hedge");
    args.extend_from_slice(extra);
    ServiceProcess::spawn(BIN, &args)
}

/// A client of the gateway that remembers which replica served each request and how many
/// requests failed.
struct Client {
    http: reqwest::Client,
    base: String,
    served: BTreeMap<String, u64>,
    failures: Vec<String>,
}

impl Client {
    fn new(gateway: &ServiceProcess) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: gateway.url(""),
            served: BTreeMap::new(),
            failures: Vec::new(),
        }
    }

    /// One `GET /api/users?limit=1`, recorded.
    async fn request(&mut self) {
        let answer = self
            .http
            .get(format!("{}/api/users?limit=1", self.base))
            .header("x-api-key", KEY)
            .send()
            .await;
        match answer {
            Ok(response) if response.status() == 200 => {
                let replica = response.headers()["x-upstream-served-by"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                *self.served.entry(replica).or_default() += 1;
            }
            Ok(response) => self.failures.push(format!("status {}", response.status())),
            Err(error) => self.failures.push(error.to_string()),
        }
    }

    fn served_by(&self, replica: &str) -> u64 {
        self.served.get(replica).copied().unwrap_or(0)
    }

    /// The users upstream's endpoints and their breakers, from `/admin/status`.
    async fn endpoints(&self) -> BTreeMap<String, Value> {
        let status: Value = self
            .http
            .get(format!("{}/admin/status", self.base))
            .header("x-api-key", OPERATOR)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let users = status["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|upstream| upstream["service"] == "user-service")
            .unwrap();
        users["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["endpoint"].as_str().unwrap().to_owned(), e.clone()))
            .collect()
    }

    /// Sends requests until the users endpoints are exactly `expected`; bounded.
    async fn until_endpoints(&mut self, expected: &[&str]) -> BTreeMap<String, Value> {
        let expected: BTreeSet<String> = expected.iter().map(|url| (*url).to_owned()).collect();
        let until = Instant::now() + PATIENCE;
        loop {
            let endpoints = self.endpoints().await;
            if endpoints.keys().cloned().collect::<BTreeSet<_>>() == expected {
                return endpoints;
            }
            assert!(
                Instant::now() < until,
                "waited {PATIENCE:?} for endpoints {expected:?}; have {:?}",
                endpoints.keys()
            );
            self.request().await;
        }
    }

    /// Sends requests until one was served by `replica`; bounded.
    async fn until_served_by(&mut self, replica: &str) {
        let until = Instant::now() + PATIENCE;
        let before = self.served_by(replica);
        while self.served_by(replica) == before {
            assert!(Instant::now() < until, "waited {PATIENCE:?} for {replica}");
            self.request().await;
        }
    }
}

/// The breaker's successes, checking it counted nothing else.
fn successes(endpoint: &Value) -> u64 {
    assert_eq!(endpoint["failures"], 0, "{endpoint}");
    endpoint["successes"].as_u64().unwrap()
}

/// A port free on both 127.0.0.2 and 127.0.0.3 (all of 127.0.0.0/8 is loopback on Linux), so
/// two replicas on this machine can be told apart by address alone, as A records need.
fn port_free_on_two_loopback_addresses() -> u16 {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.3", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answer_from_one_replica_to_two_and_back_fails_no_request_and_keeps_the_breaker() {
    let port = port_free_on_two_loopback_addresses();
    let one_replica = "127.0.0.2 users.test\n";
    let two_replicas = "127.0.0.2 users.test\n127.0.0.3 users.test\n";
    // Records with a TTL of one second: the gateway re-resolves on it.
    let Some(dns) = TestDns::start(one_replica, 1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let users_1 = users(&dir, "users-1", &format!("127.0.0.2:{port}"), &[]);
    let users_2 = users(&dir, "users-2", &format!("127.0.0.3:{port}"), &[]);
    let orders = orders(&dir);
    let source = format!("dns://users.test:{port}");
    let server = dns.addr().to_string();
    let gateway = gateway(
        &source,
        &orders,
        &[
            "--dns-server",
            &server,
            "--dns-min-ttl",
            "100ms",
            "--dns-max-ttl",
            "5s",
        ],
    );
    let (url_1, url_2) = (users_1.url(""), users_2.url(""));
    let mut client = Client::new(&gateway);

    // One replica.
    client.until_endpoints(&[&url_1]).await;
    for _ in 0..10 {
        client.request().await;
    }
    assert_eq!(client.served_by("users-1"), 10);

    // One => two: users-2 appears with a fresh breaker, users-1 keeps its counts.
    dns.set_hosts(two_replicas);
    let endpoints = client.until_endpoints(&[&url_1, &url_2]).await;
    assert_eq!(successes(&endpoints[&url_1]), client.served_by("users-1"));
    assert_eq!(successes(&endpoints[&url_2]), client.served_by("users-2"));
    client.until_served_by("users-2").await;
    let endpoints = client.endpoints().await;
    assert_eq!(successes(&endpoints[&url_1]), client.served_by("users-1"));
    assert_eq!(successes(&endpoints[&url_2]), client.served_by("users-2"));

    // Two => one: users-2 leaves; users-1 still has every count since the start.
    dns.set_hosts(one_replica);
    let endpoints = client.until_endpoints(&[&url_1]).await;
    assert_eq!(successes(&endpoints[&url_1]), client.served_by("users-1"));
    let users_2_served = client.served_by("users-2");
    for _ in 0..10 {
        client.request().await;
    }
    assert_eq!(client.served_by("users-2"), users_2_served);
    let endpoints = client.endpoints().await;
    assert_eq!(successes(&endpoints[&url_1]), client.served_by("users-1"));

    assert!(client.failures.is_empty(), "failed: {:?}", client.failures);
    let pid = dns.pid();
    drop(dns);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_leaves_etcd_on_its_lease_and_comes_back_when_started() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let register = format!("etcd://{}/demo", etcd.authority());
    let with_lease = |ttl: &'static str| ["--register", register.as_str(), "--register-ttl", ttl];
    let users_1 = users(&dir, "users-1", "127.0.0.1:0", &with_lease("2"));
    let users_2 = users(&dir, "users-2", "127.0.0.1:0", &with_lease("2"));
    let orders = orders(&dir);
    let source = format!("etcd://{}/demo/users", etcd.authority());
    let gateway = gateway(&source, &orders, &[]);
    let (url_1, url_2) = (users_1.url(""), users_2.url(""));
    let mut client = Client::new(&gateway);
    client.until_endpoints(&[&url_1, &url_2]).await;
    client.until_served_by("users-2").await;

    // SIGKILL: no deregistration; the key goes when its 2 s lease expires. Meanwhile requests
    // that users-2 refuses go to users-1 at once.
    drop(users_2);
    client.until_endpoints(&[&url_1]).await;

    // Started again (on a new port, as after a reschedule), it registers and serves. Its lease
    // is longer than any wait here, so only deregistering can take it out again.
    let users_2 = users(&dir, "users-2", "127.0.0.1:0", &with_lease("3600"));
    let url_2 = users_2.url("");
    client.until_endpoints(&[&url_1, &url_2]).await;
    client.until_served_by("users-2").await;

    // SIGTERM: it deregisters before it stops listening.
    users_2.terminate();
    client.until_endpoints(&[&url_1]).await;

    assert!(client.failures.is_empty(), "failed: {:?}", client.failures);
    drop(users_2);
    let pid = etcd.pid();
    drop(etcd);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_srv_records_give_each_replica_its_own_port() {
    let dir = tempfile::tempdir().unwrap();
    // Both on 127.0.0.1, told apart only by port: A records cannot say this, SRV records can.
    let users_1 = users(&dir, "users-1", "127.0.0.1:0", &[]);
    let users_2 = users(&dir, "users-2", "127.0.0.1:0", &[]);
    let port = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let (url_1, url_2) = (users_1.url(""), users_2.url(""));
    let hosts = "127.0.0.1 users-1.test\n127.0.0.1 users-2.test\n";
    let services = [
        ("_http._tcp.users.test", "users-1.test", port(&url_1)),
        ("_http._tcp.users.test", "users-2.test", port(&url_2)),
    ];
    let Some(dns) = TestDns::start_with_services(hosts, &services, 1) else {
        return;
    };
    let orders = orders(&dir);
    let server = dns.addr().to_string();
    let gateway = gateway(
        "dns+srv://_http._tcp.users.test",
        &orders,
        &["--dns-server", &server, "--dns-min-ttl", "100ms"],
    );
    let mut client = Client::new(&gateway);

    client.until_endpoints(&[&url_1, &url_2]).await;
    for _ in 0..10 {
        client.request().await;
    }
    // Round robin over the two: each served half, give or take the one odd request.
    let (served_1, served_2) = (client.served_by("users-1"), client.served_by("users-2"));
    assert!(served_1 >= 5 && served_2 >= 5, "{served_1} / {served_2}");
    assert!(served_1.abs_diff(served_2) <= 1, "{served_1} / {served_2}");
    assert!(client.failures.is_empty(), "failed: {:?}", client.failures);
}
