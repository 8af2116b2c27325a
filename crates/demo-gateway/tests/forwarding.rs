//! What the gateway sends upstream: the request id, the idempotency key and the trace context
//! (continued: the gateway's attempt as parent) go along; the client's API key, its credentials and hop-by-hop headers stay at the gateway.
//! In a mesh (`--mesh`) each request goes upstream once, whatever it answers.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Parser;
use demo_gateway::config::Cli;
use demo_gateway::upstream::Upstream;
use demo_gateway::{ApiKeys, GatewayState};
use demo_kit::testing::{request, send};
use http::HeaderMap;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// An upstream that records the headers of every request and answers a user.
async fn recording_upstream() -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    answering_upstream(200).await
}

/// An upstream that records the headers of every request and answers `status` with a user.
async fn answering_upstream(status: u16) -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    log.lock().unwrap().push(req.headers().clone());
                    async move {
                        let body = Full::new(Bytes::from_static(br#"{"id": 1, "name": "Ada"}"#));
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(body)
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn only_safe_headers_reach_the_upstream() {
    // Propagation as the binaries set it up (no exporter).
    demo_kit::init_tracing();
    let (url, seen) = recording_upstream().await;
    let config = Cli::try_parse_from([
        "demo-gateway",
        "--no-spawn",
        "--users",
        &url,
        "--orders",
        &url,
        "--api-key",
        "secret-key",
    ])
    .unwrap()
    .gateway;
    let one = std::num::NonZeroU32::new(100).unwrap();
    let state = GatewayState::new(
        Upstream::new("user-service", "users", &config.users, &config.upstream).unwrap(),
        Upstream::new("order-service", "orders", &config.orders, &config.upstream).unwrap(),
        ApiKeys::new(config.api_keys.clone(), one, one),
    );
    let service = demo_gateway::service::<Full<Bytes>>(state);

    let mut req = request(
        "PUT",
        "/api/users/1",
        r#"{"name": "Ada", "email": "ada@example.com"}"#,
    );
    for (name, value) in [
        ("x-api-key", "secret-key"),
        ("authorization", "Bearer secret-key"),
        ("cookie", "session=1"),
        ("x-request-id", "trace-me-7"),
        ("idempotency-key", "k-9"),
        ("te", "trailers"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic eA=="),
        ("x-forwarded-for", "6.6.6.6"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "vendor=1"),
        ("b3", "4bf92f3577b34da6-00f067aa0ba902b7-1"),
        ("x-b3-traceid", "4bf92f3577b34da6"),
    ] {
        req.headers_mut()
            .insert(http::HeaderName::from_static(name), value.parse().unwrap());
    }
    let answer = send(&service, req).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    assert_eq!(answer.json()["data"]["name"], "Ada");

    let seen = seen.lock().unwrap();
    let headers = &seen[0];
    assert_eq!(headers["x-request-id"], "trace-me-7");
    assert_eq!(headers["idempotency-key"], "k-9");
    assert_eq!(headers["content-type"], "application/json");
    // The trace continues: the same trace id and flags, the trace's state, and as parent the
    // gateway's attempt span, not the client's span.
    let traceparent = headers["traceparent"].to_str().unwrap();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "the client's span is not the parent"
    );
    assert_eq!(parts[3], "01");
    assert_eq!(headers["tracestate"], "vendor=1");
    assert_eq!(headers["b3"], "4bf92f3577b34da6-00f067aa0ba902b7-1");
    assert_eq!(headers["x-b3-traceid"], "4bf92f3577b34da6");
    for name in [
        "x-api-key",
        "authorization",
        "cookie",
        "te",
        "upgrade",
        "proxy-authorization",
        "x-forwarded-for",
    ] {
        assert!(!headers.contains_key(name), "{name} was forwarded");
    }
}

#[tokio::test]
async fn in_a_mesh_a_failing_request_goes_upstream_once_and_no_breaker_opens() {
    let (url, seen) = answering_upstream(500).await;
    let config = Cli::try_parse_from([
        "demo-gateway",
        "--no-spawn",
        "--users",
        &url,
        "--orders",
        &url,
        "--api-key",
        "secret-key",
        "--mesh",
    ])
    .unwrap()
    .gateway;
    let one = std::num::NonZeroU32::new(100).unwrap();
    let users = Upstream::new("user-service", "users", &config.users, &config.upstream).unwrap();
    let state = GatewayState::new(
        users.clone(),
        Upstream::new("order-service", "orders", &config.orders, &config.upstream).unwrap(),
        ApiKeys::new(config.api_keys.clone(), one, one),
    );
    let service = demo_gateway::service::<Full<Bytes>>(state);

    // Ten failures in a row: more than the breaker's five, and each would be retried twice
    // without the mesh.
    for _ in 0..10 {
        let mut req = request("GET", "/api/users/1", "");
        req.headers_mut()
            .insert("x-api-key", "secret-key".parse().unwrap());
        let answer = send(&service, req).await;
        assert_eq!(answer.status, 502, "{:?}", answer.json());
    }
    assert_eq!(seen.lock().unwrap().len(), 10, "one attempt per request");
    let breakers = users.client.breakers();
    assert_eq!(breakers.len(), 1);
    assert_eq!(breakers[0].state(), resilience::State::ForcedClosed);
    assert!(users.is_ready());
}
