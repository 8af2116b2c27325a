//! The shared stack and accept loop, in-process and over a real socket.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::time::Duration;

use bytes::Bytes;
use demo_kit::faults::{self, FaultConfig, Faults};
use demo_kit::testing::{from_loopback, json_request, request, send};
use demo_kit::{AppError, HttpService, Stack, serve};
use http_body_util::{Full, StreamBody};
use rustapi_core::{Body, RustApi, get};
use serde_json::json;

async fn hello() -> &'static str {
    "hello"
}

async fn echo(Body(body): Body) -> Result<rustapi_core::Response, AppError> {
    Ok(demo_kit::response::json(
        http::StatusCode::OK,
        &json!({"len": body.len()}),
    ))
}

/// Signalled by [`slow`] once it runs, so a test knows its request is in flight.
static SLOW_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

async fn slow() -> &'static str {
    SLOW_STARTED.notify_one();
    tokio::time::sleep(Duration::from_millis(300)).await;
    "done"
}

/// A handler answering an error it did not make with `AppError`, as a proxy passing an
/// upstream's answer through would.
async fn passed_through() -> rustapi_core::Response {
    let body = r#"{"error":{"code":"not_found","message":"user 42 not found"}}"#;
    let mut res = http::Response::new(rustapi_core::ResponseBody::from(body));
    *res.status_mut() = http::StatusCode::NOT_FOUND;
    res
}

fn app() -> RustApi {
    RustApi::new()
        .route("/passed-through", get(passed_through))
        .route("/hello", get(hello))
        .route("/echo", rustapi_core::post(echo))
        .route("/slow", get(slow))
}

fn service(stack: &Stack) -> HttpService<Full<Bytes>> {
    stack.service(&app())
}

#[tokio::test]
async fn unknown_route_is_json_404() {
    let svc = service(&Stack::new());
    let res = send(&svc, request("GET", "/nope", "")).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.error_code(), "not_found");
    assert!(
        res.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nope")
    );
}

#[tokio::test]
async fn error_bodies_already_in_the_json_shape_are_kept() {
    let svc = service(&Stack::new());
    let res = send(&svc, request("GET", "/passed-through", "")).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["error"]["message"], "user 42 not found");
}

#[tokio::test]
async fn wrong_method_is_json_405_with_allow() {
    let svc = service(&Stack::new());
    let res = send(&svc, request("DELETE", "/hello", "")).await;
    assert_eq!(res.status, 405);
    assert_eq!(res.error_code(), "method_not_allowed");
    assert_eq!(res.header("allow"), Some("GET"));
}

#[tokio::test]
async fn body_over_limit_with_content_length_is_413() {
    let svc = service(&Stack::new().with_body_limit(1024));
    let mut req = request("POST", "/echo", vec![b'x'; 2048]);
    req.headers_mut().insert("content-length", 2048.into());
    let res = send(&svc, req).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.error_code(), "payload_too_large");
}

#[tokio::test]
async fn chunked_body_over_limit_is_413() {
    let svc: HttpService<StreamBody<_>> = Stack::new().with_body_limit(1024).service(&app());
    // 4 chunks of 512 bytes, no Content-Length.
    let chunks = (0..4).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'x'; 512])))
    });
    let body = StreamBody::new(futures::stream::iter(chunks));
    let req = http::Request::post("/echo").body(body).unwrap();
    let res = send(&svc, req).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.error_code(), "payload_too_large");
}

#[tokio::test]
async fn body_under_limit_reaches_the_handler() {
    let svc = service(&Stack::new().with_body_limit(1024));
    let res = send(&svc, request("POST", "/echo", vec![b'x'; 1000])).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["len"], 1000);
}

#[tokio::test]
async fn request_id_is_kept_or_made_and_echoed() {
    let svc = service(&Stack::new());
    let mut req = request("GET", "/hello", "");
    req.headers_mut()
        .insert("x-request-id", "abc-123".parse().unwrap());
    let res = send(&svc, req).await;
    assert_eq!(res.header("x-request-id"), Some("abc-123"));

    let a = send(&svc, request("GET", "/hello", "")).await;
    let b = send(&svc, request("GET", "/nope", "")).await;
    let (a, b) = (
        a.header("x-request-id").unwrap(),
        b.header("x-request-id").unwrap(),
    );
    assert!(!a.is_empty());
    assert_ne!(a, b);
}

#[tokio::test]
async fn every_response_says_who_served_it() {
    let svc = service(&Stack::new().with_served_by("users-9").with_body_limit(10));
    for req in [
        request("GET", "/hello", ""),
        request("GET", "/nope", ""),
        request("PUT", "/hello", ""),
        request("POST", "/echo", vec![0; 100]),
    ] {
        let res = send(&svc, req).await;
        assert_eq!(res.header("x-served-by"), Some("users-9"), "{}", res.status);
    }
}

#[tokio::test]
async fn full_failure_rate_answers_500_and_off_succeeds() {
    let faults = Faults::new(FaultConfig {
        failure_rate: 1.0,
        ..FaultConfig::default()
    })
    .unwrap();
    let app = faults::routes(app(), faults.clone());
    let svc: HttpService<Full<Bytes>> = Stack::new().with_faults(faults.clone()).service(&app);
    for _ in 0..20 {
        let res = send(&svc, request("GET", "/hello", "")).await;
        assert_eq!(res.status, 500);
        assert_eq!(res.error_code(), "injected_fault");
    }
    // The admin route is exempt, so faults can be turned off again.
    let off = json!({"latency_ms": 0, "failure_rate": 0.0});
    let res = send(
        &svc,
        from_loopback(json_request("PUT", "/admin/faults", &off)),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    for _ in 0..20 {
        assert_eq!(send(&svc, request("GET", "/hello", "")).await.status, 200);
    }
}

#[tokio::test(start_paused = true)]
async fn latency_is_added() {
    let faults = Faults::new(FaultConfig {
        latency_ms: 5_000,
        ..FaultConfig::default()
    })
    .unwrap();
    let svc = service(&Stack::new().with_faults(faults));
    let start = tokio::time::Instant::now();
    assert_eq!(send(&svc, request("GET", "/hello", "")).await.status, 200);
    assert!(start.elapsed() >= Duration::from_secs(5));
}

#[tokio::test]
async fn admin_faults_answers_only_loopback_and_validates() {
    let faults = Faults::default();
    let app = faults::routes(app(), faults.clone());
    let svc: HttpService<Full<Bytes>> = Stack::new().with_faults(faults.clone()).service(&app);
    let set = json!({"latency_ms": 10, "failure_rate": 0.25, "stall_body": false});

    let res = send(&svc, json_request("PUT", "/admin/faults", &set)).await;
    assert_eq!(res.status, 403);
    assert_eq!(faults.get(), FaultConfig::default());

    let res = send(
        &svc,
        from_loopback(json_request("PUT", "/admin/faults", &set)),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        faults.get(),
        FaultConfig {
            latency_ms: 10,
            failure_rate: 0.25,
            stall_body: false,
        }
    );
    let res = send(&svc, from_loopback(request("GET", "/admin/faults", ""))).await;
    assert_eq!(res.json(), set);

    let bad = json!({"failure_rate": 2});
    let res = send(
        &svc,
        from_loopback(json_request("PUT", "/admin/faults", &bad)),
    )
    .await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["error"]["field"], "failure_rate");
    let res = send(
        &svc,
        from_loopback(request("PUT", "/admin/faults", "{nope")),
    )
    .await;
    assert_eq!(res.status, 400);
}

#[tokio::test]
async fn serve_drains_in_flight_requests_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        Stack::new().with_served_by("t").service(&app()),
        async {
            let _ = stop_rx.await;
        },
    ));

    let client = reqwest::Client::new();
    let hello = client
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.headers()["x-served-by"], "t");
    assert_eq!(hello.text().await.unwrap(), "hello");

    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.get(format!("http://{addr}/slow")).send().await }
    });
    // Shut down once the slow request is in its handler.
    tokio::time::timeout(Duration::from_secs(30), SLOW_STARTED.notified())
        .await
        .expect("the slow request reached its handler");
    stop_tx.send(()).unwrap();

    let res = in_flight
        .await
        .unwrap()
        .expect("in-flight request was cut off");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve did not return after draining")
        .unwrap()
        .unwrap();
    // Stopped accepting.
    assert!(
        reqwest::Client::new()
            .get(format!("http://{addr}/hello"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn serve_records_the_peer_address() {
    let faults = Faults::default();
    let app = faults::routes(app(), faults.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Stack::new().service(&app), async {
        let _ = stop_rx.await;
    }));
    // Over a real loopback socket the admin route answers.
    let res = reqwest::get(format!("http://{addr}/admin/faults"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_sends_its_first_half_and_then_nothing() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let faults = Faults::new(FaultConfig {
        stall_body: true,
        ..FaultConfig::default()
    })
    .unwrap();
    let whole = send(&service(&Stack::new()), request("GET", "/hello", "")).await;
    let svc = service(&Stack::new().with_faults(faults));
    let response = svc.oneshot(request("GET", "/hello", "")).await.unwrap();
    assert_eq!(response.status(), 200);
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, whole.body.len(), "the full length is promised");
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first.len(), length / 2);
    let rest = tokio::time::timeout(Duration::from_secs(60), body.frame()).await;
    assert!(rest.is_err(), "nothing more comes, not even the end");
}
