//! One trace from the client through the gateway, every attempt, to the services (issue 11):
//! real processes on 127.0.0.1, each exporting to an OTLP/HTTP receiver of the test's, with
//! their log lines kept. users-2 answers every request 500 (fault injection), so a request that
//! reaches it first is retried on users-1: two attempts, two parents, one trace.
//!
//! Processes need the real clock: waits poll for traffic and spans, each bounded.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::time::Duration;

use demo_kit::testing::otlp::{OtlpReceiver, ReceivedSpan, summary};
use demo_kit::testing::{Logs, ServiceProcess};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

const BIN: &str = env!("CARGO_BIN_EXE_demo-gateway");
const KEY: &str = "test-key";
const PATIENCE: Duration = Duration::from_secs(30);
/// The client's span, parent of the gateway's server span.
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

struct Traced {
    _dir: tempfile::TempDir,
    users_1: (ServiceProcess, Logs),
    users_2: (ServiceProcess, Logs),
    orders: (ServiceProcess, Logs),
    gateway: (ServiceProcess, Logs),
    http: reqwest::Client,
}

fn spawn(args: &[&str], otlp: Option<&str>) -> (ServiceProcess, Logs) {
    let mut args = args.to_vec();
    if let Some(otlp) = otlp {
        args.extend_from_slice(&["--otlp-endpoint", otlp]);
    }
    ServiceProcess::spawn_logged(BIN, &args, &[("RUST_LOG", "info")])
}

impl Traced {
    /// The processes, exporting to `otlp` when given.
    fn start(otlp: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let users_db = dir.path().join("users.db");
        let users_db = users_db.to_str().unwrap();
        let orders_db = dir.path().join("orders.db");
        let users = |name: &str, extra: &[&str]| {
            let mut args = vec![
                "users",
                "--listen",
                "127.0.0.1:0",
                "--db",
                users_db,
                "--replica",
                name,
            ];
            args.extend_from_slice(extra);
            spawn(&args, otlp)
        };
        let users_1 = users("users-1", &[]);
        let users_2 = users("users-2", &["--fault-failure-rate", "1.0"]);
        let orders = spawn(
            &[
                "orders",
                "--listen",
                "127.0.0.1:0",
                "--db",
                orders_db.to_str().unwrap(),
                "--replica",
                "orders",
            ],
            otlp,
        );
        let users_urls = format!("{},{}", users_2.0.url(""), users_1.0.url(""));
        let orders_url = orders.0.url("");
        let gateway = spawn(
            &[
                "--no-spawn",
                "--listen",
                "127.0.0.1:0",
                "--users",
                &users_urls,
                "--orders",
                &orders_url,
                "--api-key",
                KEY,
                // One retry per failed attempt, no hedge copies: the attempts are known.
                "--no-hedge",
            ],
            otlp,
        );
        Self {
            _dir: dir,
            users_1,
            users_2,
            orders,
            gateway,
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, traceparent: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(self.gateway.0.url(path))
            .header("x-api-key", KEY);
        if let Some(traceparent) = traceparent {
            request = request
                .header("traceparent", traceparent)
                .header("tracestate", "client=1");
        }
        request.send().await.unwrap()
    }

    /// SIGTERM to every process, and waits for them to exit: each drains and flushes its spans.
    fn stop(&mut self) {
        for (process, _) in [
            &mut self.gateway,
            &mut self.users_1,
            &mut self.users_2,
            &mut self.orders,
        ] {
            process.terminate();
            let status = process.wait_timeout(PATIENCE).expect("the process exits");
            assert!(status.success(), "{status}");
        }
    }
}

/// Waits for a service's "finished processing request" line of trace `trace_id` and returns
/// the `parent_id` on it.
async fn wait_for_parent(logs: &Logs, trace_id: &str) -> String {
    let trace = format!("trace_id={trace_id}");
    let line = wait_for_line(logs, |line| {
        line.contains(&trace)
            && line.contains("finished processing request")
            && line.contains("parent_id=")
    })
    .await;
    line.split("parent_id=")
        .nth(1)
        .map(|rest| rest.chars().take(16).collect())
        .unwrap_or_default()
}

/// Waits for a line `wanted` accepts: a process writes its log line before its answer leaves,
/// but the test reads the log through a pipe, so the line may arrive after the answer.
async fn wait_for_line(logs: &Logs, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(line) = logs.lines().into_iter().find(|line| wanted(line)) {
            return line;
        }
        assert!(std::time::Instant::now() < deadline, "{:#?}", logs.lines());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn port(process: &ServiceProcess) -> i64 {
    i64::from(process.addr().port())
}

fn by_id<'a>(spans: &'a [ReceivedSpan], id: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|span| span.span_id() == id)
        .unwrap_or_else(|| panic!("no span {id} in {:#?}", summary(spans)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_the_client_through_every_attempt_to_the_services() {
    let receiver = OtlpReceiver::start().await;
    let mut cluster = Traced::start(Some(&receiver.endpoint()));

    // Round robin starts on users-2 or users-1; of two requests, one reaches users-2 first.
    let traces = [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "5cf92f3577b34da6a3ce929d0e0e4737",
    ];
    for trace in traces {
        let traceparent = format!("00-{trace}-{CLIENT_SPAN}-01");
        let answer = cluster.get("/api/users/1", Some(&traceparent)).await;
        assert_eq!(answer.status(), 200);
    }
    // The aggregation route: two upstream calls, siblings under one server span.
    let aggregated = "6df92f3577b34da6a3ce929d0e0e4738";
    let answer = cluster
        .get(
            "/api/users/2/orders",
            Some(&format!("00-{aggregated}-{CLIENT_SPAN}-01")),
        )
        .await;
    assert!(answer.status().is_success(), "{}", answer.status());
    // A malformed traceparent is ignored, never an error: a new trace starts.
    let answer = cluster.get("/api/users/3", Some("00-not-a-trace-01")).await;
    assert_eq!(answer.status(), 200);

    // From the logs: the retried request's trace id at every hop, a different parent per attempt.
    let retried = *traces
        .iter()
        .find(|trace| !cluster.users_2.1.containing(trace).is_empty())
        .expect("one request reached users-2");
    let parent_on_users_2 = wait_for_parent(&cluster.users_2.1, retried).await;
    let parent_on_users_1 = wait_for_parent(&cluster.users_1.1, retried).await;
    assert_ne!(parent_on_users_1, parent_on_users_2);
    assert_ne!(parent_on_users_1, CLIENT_SPAN);
    assert_ne!(parent_on_users_2, CLIENT_SPAN);
    let gateway_lines = cluster.gateway.1.containing(&format!("trace_id={retried}"));
    assert!(
        !gateway_lines.is_empty(),
        "{:#?}",
        cluster.gateway.1.lines()
    );

    // From the spans the processes exported (flushed as they shut down).
    cluster.stop();
    let in_trace = |spans: &[ReceivedSpan], trace: &str, service: &str| -> usize {
        spans
            .iter()
            .filter(|span| span.trace_id() == trace && span.service == service)
            .count()
    };
    let spans = receiver
        .wait_for(PATIENCE, |spans| {
            in_trace(spans, retried, "gateway") >= 3
                && in_trace(spans, retried, "users") >= 2
                && in_trace(spans, aggregated, "orders") >= 1
        })
        .await;

    // Server span → attempt spans → service spans.
    let server = spans
        .iter()
        .find(|span| {
            span.trace_id() == retried
                && span.span.kind == SpanKind::Server as i32
                && span.service == "gateway"
        })
        .unwrap_or_else(|| panic!("{:#?}", summary(&spans)));
    assert_eq!(server.span.name, "GET /api/users/{id}");
    assert_eq!(server.parent_id(), CLIENT_SPAN);
    assert_eq!(server.string("http.route"), Some("/api/users/{id}"));
    assert_eq!(server.int("http.response.status_code"), Some(200));
    assert!(
        server
            .span
            .events
            .iter()
            .any(|event| event.name == "retrying"),
        "the retry decision is an event of the server span: {:?}",
        server.span.events
    );

    let mut attempts: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| {
            span.span.kind == SpanKind::Client as i32 && span.parent_id() == server.span_id()
        })
        .collect();
    attempts.sort_by_key(|span| span.int("http.request.resend_count"));
    assert_eq!(attempts.len(), 2, "{:#?}", summary(&spans));
    let (first, retry) = (attempts[0], attempts[1]);
    assert_eq!(first.int("http.request.resend_count"), Some(0));
    assert_eq!(retry.int("http.request.resend_count"), Some(1));
    for attempt in [first, retry] {
        assert_eq!(attempt.span.name, "GET");
        assert_eq!(attempt.string("http.request.method"), Some("GET"));
        assert_eq!(attempt.string("server.address"), Some("127.0.0.1"));
        assert!(attempt.string("url.full").unwrap().ends_with("/users/1"));
    }
    assert_eq!(first.int("server.port"), Some(port(&cluster.users_2.0)));
    assert_eq!(first.int("http.response.status_code"), Some(500));
    assert_eq!(first.string("error.type"), Some("500"));
    assert_eq!(retry.int("server.port"), Some(port(&cluster.users_1.0)));
    assert_eq!(retry.int("http.response.status_code"), Some(200));
    assert_eq!(retry.string("error.type"), None);

    // Each service's span is a child of the attempt that reached it, as it logged.
    let service_span = |attempt: &ReceivedSpan| {
        spans
            .iter()
            .find(|span| span.service == "users" && span.parent_id() == attempt.span_id())
            .unwrap_or_else(|| {
                panic!(
                    "no users span under {}: {:#?}",
                    attempt.span_id(),
                    summary(&spans)
                )
            })
    };
    assert_eq!(service_span(first).span.kind, SpanKind::Server as i32);
    assert_eq!(service_span(first).span.name, "GET /users/{id}");
    assert_eq!(
        service_span(first).int("http.response.status_code"),
        Some(500)
    );
    assert_eq!(
        service_span(retry).int("http.response.status_code"),
        Some(200)
    );
    assert_eq!(first.span_id(), parent_on_users_2);
    assert_eq!(retry.span_id(), parent_on_users_1);

    // Aggregation: the user and the orders calls are siblings under one server span.
    let aggregation = spans
        .iter()
        .find(|span| {
            span.trace_id() == aggregated
                && span.span.kind == SpanKind::Server as i32
                && span.service == "gateway"
        })
        .unwrap();
    assert_eq!(aggregation.span.name, "GET /api/users/{id}/orders");
    let calls: Vec<_> = spans
        .iter()
        .filter(|span| {
            span.parent_id() == aggregation.span_id() && span.span.kind == SpanKind::Client as i32
        })
        .collect();
    assert!(
        calls
            .iter()
            .any(|call| call.int("server.port") == Some(port(&cluster.orders.0)))
    );
    assert!(
        calls
            .iter()
            .any(|call| call.int("server.port") == Some(port(&cluster.users_1.0)))
    );
    let orders_span = spans
        .iter()
        .find(|span| span.trace_id() == aggregated && span.service == "orders")
        .unwrap();
    assert!(
        calls
            .iter()
            .any(|call| call.span_id() == orders_span.parent_id())
    );

    // The malformed traceparent: a gateway root span, and the services in that new trace.
    let fresh = spans
        .iter()
        .find(|span| {
            span.service == "gateway"
                && span.span.kind == SpanKind::Server as i32
                && span.string("url.path") == Some("/api/users/3")
        })
        .unwrap();
    assert_eq!(fresh.parent_id(), "");
    assert!(
        spans
            .iter()
            .any(|span| span.service == "users" && span.trace_id() == fresh.trace_id())
    );
    let _ = by_id(&spans, &fresh.span_id());
}

/// Without `--otlp-endpoint` nothing is exported, and the trace still goes on: the services see
/// the client's trace id, each attempt as a different parent, and log with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_exporter_the_trace_still_reaches_the_services() {
    let cluster = Traced::start(None);
    let traces = [
        "7af92f3577b34da6a3ce929d0e0e4739",
        "8bf92f3577b34da6a3ce929d0e0e4740",
    ];
    for trace in traces {
        let answer = cluster
            .get(
                "/api/users/1",
                Some(&format!("00-{trace}-{CLIENT_SPAN}-01")),
            )
            .await;
        assert_eq!(answer.status(), 200);
    }
    let retried = *traces
        .iter()
        .find(|trace| !cluster.users_2.1.containing(trace).is_empty())
        .expect("one request reached users-2");
    let on_users_2 = wait_for_parent(&cluster.users_2.1, retried).await;
    let on_users_1 = wait_for_parent(&cluster.users_1.1, retried).await;
    assert_ne!(on_users_1, on_users_2);
    assert_ne!(on_users_1, CLIENT_SPAN);
    let retried_trace = format!("trace_id={retried}");
    wait_for_line(&cluster.gateway.1, |line| line.contains(&retried_trace)).await;

    // Without a traceparent the request still gets a trace, which the service continues.
    // users-2 fails everything, so users-1 serves it, first or on the retry.
    let answer = cluster.get("/api/users/2", None).await;
    assert_eq!(answer.status(), 200);
    let line = wait_for_line(&cluster.gateway.1, |line| {
        line.contains("path=/api/users/2") && line.contains("trace_id=")
    })
    .await;
    let trace: String = line
        .split("trace_id=")
        .nth(1)
        .unwrap()
        .chars()
        .take(32)
        .collect();
    let attempt = wait_for_parent(&cluster.users_1.1, &trace).await;
    assert_eq!(attempt.len(), 16);
}
