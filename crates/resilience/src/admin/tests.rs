use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::Value;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer};
use crate::error::BoxError;

type Endpoint = CircuitBreaker<
    tower::util::ServiceFn<
        Box<dyn Fn(bool) -> std::future::Ready<Result<(), BoxError>> + Send + Sync>,
    >,
>;

/// An endpoint whose calls fail when asked to.
fn endpoint(name: &str) -> Endpoint {
    let config = CircuitBreakerConfig::builder()
        .consecutive_failures(3)
        .build()
        .unwrap();
    let answer: Box<dyn Fn(bool) -> std::future::Ready<Result<(), BoxError>> + Send + Sync> =
        Box::new(|fail| std::future::ready(if fail { Err("refused".into()) } else { Ok(()) }));
    CircuitBreakerLayer::new(config)
        .named(name)
        .reject_when_open()
        .layer(service_fn(answer))
}

async fn calls(endpoint: &mut Endpoint, n: usize, fail: bool) {
    for _ in 0..n {
        let _ = endpoint.ready().await.unwrap().call(fail).await;
    }
}

async fn get(admin: &Admin, method: &str, path: &str) -> http::Response<ResponseBody> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(Empty::<Bytes>::new())
        .unwrap();
    admin.clone().oneshot(request).await.unwrap()
}

async fn json_of(response: http::Response<ResponseBody>) -> Value {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// The next SSE event of `body`: its name and JSON data.
async fn next_event(body: &mut ResponseBody) -> (String, Value) {
    let frame = body.frame().await.unwrap().unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    let mut lines = text.lines();
    let name = lines
        .next()
        .unwrap()
        .strip_prefix("event: ")
        .unwrap()
        .to_owned();
    let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [""],
        "one data line, then a blank line"
    );
    assert!(text.ends_with("\n\n"));
    (name, serde_json::from_str(data).unwrap())
}

fn registry_of(endpoints: &[&Endpoint]) -> Registry {
    let handles: Vec<_> = endpoints.iter().map(|e| e.handle()).collect();
    let registry = Registry::new();
    registry.add("users", move || handles.clone());
    registry
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_has_states_counters_and_rates_over_the_last_ten_seconds() {
    let (mut a, mut b) = (endpoint("users@a"), endpoint("users@b"));
    let admin = Admin::new(registry_of(&[&a, &b])).mounted_at("/admin");

    let first = json_of(get(&admin, "GET", "/admin/breakers").await).await;
    let users = &first["upstreams"][0];
    assert_eq!(users["name"], "users");
    assert_eq!(users["endpoints"][0]["endpoint"], "a");
    assert_eq!(users["endpoints"][0]["name"], "users@a");
    assert_eq!(
        users["endpoints"][0]["requests_per_second"],
        Value::Null,
        "no earlier look"
    );

    calls(&mut a, 20, false).await;
    calls(&mut b, 6, false).await;
    calls(&mut b, 2, true).await;
    tokio::time::advance(Duration::from_secs(2)).await;
    let second = json_of(get(&admin, "GET", "/admin/breakers").await).await;
    let endpoints = &second["upstreams"][0]["endpoints"];
    assert_eq!(endpoints[0]["state"], "closed");
    assert_eq!(endpoints[0]["calls"], 20);
    assert_eq!(endpoints[0]["requests_per_second"], 10.0);
    assert_eq!(endpoints[0]["error_rate"], 0.0);
    assert_eq!(endpoints[1]["requests_per_second"], 4.0);
    assert_eq!(endpoints[1]["error_rate"], 0.25);
    assert_eq!(endpoints[1]["consecutive_failures"], 2);
    assert_eq!(endpoints[1]["latency_p50_ms"], Value::Null, "not measured");

    // b trips: its third failure in a row.
    calls(&mut b, 1, true).await;
    calls(&mut b, 4, false).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let third = json_of(get(&admin, "GET", "/admin/breakers").await).await;
    let b = &third["upstreams"][0]["endpoints"][1];
    assert_eq!(b["state"], "open");
    assert_eq!(b["rejected"], 4);
    assert_eq!(b["last_transition"]["reason"], "3 consecutive failures");
    assert_eq!(b["last_transition"]["to"], "open");
    assert!(b["next_probe_in_ms"].as_u64().is_some());
    assert_eq!(
        b["history"].as_array().unwrap().len(),
        2,
        "one rate per pair of looks"
    );

    // Ten seconds on, the calls of the first seconds no longer count.
    for _ in 0..12 {
        tokio::time::advance(Duration::from_secs(1)).await;
        get(&admin, "GET", "/admin/breakers").await;
    }
    let later = json_of(get(&admin, "GET", "/admin/breakers").await).await;
    assert_eq!(
        later["upstreams"][0]["endpoints"][0]["requests_per_second"],
        0.0
    );
    assert_eq!(
        later["upstreams"][0]["endpoints"][0]["error_rate"],
        Value::Null
    );
}

#[tokio::test(start_paused = true)]
async fn latency_shows_beside_the_breaker_that_measured_it() {
    let recorder = LatencyRecorder::new();
    let config = CircuitBreakerConfig::default();
    let mut service = CircuitBreakerLayer::new(config).named("users@slow").layer(
        LatencyLayer::new(recorder.clone()).layer(service_fn(|()| async {
            tokio::time::sleep(Duration::from_millis(40)).await;
            Ok::<_, BoxError>(())
        })),
    );
    let watched = WatchedEndpoint::new(service.handle()).with_latency(recorder);
    let registry = Registry::new();
    registry.add("users", move || vec![watched.clone()]);
    for _ in 0..5 {
        service.ready().await.unwrap().call(()).await.unwrap();
    }
    let endpoint = &registry.snapshot().upstreams[0].endpoints[0];
    let p50 = endpoint.latency_p50_ms.unwrap();
    assert!((40.0..50.0).contains(&p50), "{p50}");
    assert_eq!(endpoint.latency_p99_ms, Some(p50));
}

#[tokio::test(start_paused = true)]
async fn the_registry_follows_endpoints_that_come_and_go() {
    let endpoints = Arc::new(Mutex::new(vec![endpoint("users@a").handle()]));
    let registry = Registry::new();
    let source = Arc::clone(&endpoints);
    registry.add("users", move || source.lock().unwrap().clone());
    let names = |registry: &Registry| -> Vec<String> {
        registry.snapshot().upstreams[0]
            .endpoints
            .iter()
            .map(|e| e.name.clone())
            .collect()
    };
    assert_eq!(names(&registry), ["users@a"]);
    endpoints.lock().unwrap().push(endpoint("users@b").handle());
    assert_eq!(names(&registry), ["users@a", "users@b"]);
    endpoints.lock().unwrap().remove(0);
    assert_eq!(names(&registry), ["users@b"]);
    assert!(registry.breaker("users@a").is_none());
    assert!(registry.breaker("users@b").is_some());
}

#[tokio::test(start_paused = true)]
async fn the_stream_sends_a_snapshot_at_once_each_transition_as_it_happens_and_a_snapshot_each_second()
 {
    let mut a = endpoint("users@a");
    let admin = Admin::new(registry_of(&[&a]));
    let response = get(&admin, "GET", "/breakers/events").await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();

    let (name, snapshot) = next_event(&mut body).await;
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["upstreams"][0]["endpoints"][0]["state"], "closed");

    calls(&mut a, 3, true).await;
    let (name, transition) = next_event(&mut body).await;
    assert_eq!(name, "transition");
    assert_eq!(transition["breaker"], "users@a");
    assert_eq!(
        (&transition["from"], &transition["to"]),
        (&Value::from("closed"), &Value::from("open"))
    );
    assert_eq!(transition["reason"], "3 consecutive failures");

    let started = tokio::time::Instant::now();
    let (name, snapshot) = next_event(&mut body).await;
    assert_eq!(name, "snapshot");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(snapshot["upstreams"][0]["endpoints"][0]["state"], "open");

    // An operator action is a transition too, with its reason.
    get(&admin, "POST", "/breakers/users%40a/reset").await;
    let (name, transition) = next_event(&mut body).await;
    assert_eq!(
        (name.as_str(), &transition["reason"]),
        ("transition", &Value::from("reset"))
    );

    // Closing the registry ends the stream, so a server can drain.
    admin.registry().close();
    assert!(body.frame().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_stream_costs_nothing_once_its_connection_is_gone() {
    let mut a = endpoint("users@a");
    let registry = registry_of(&[&a]);
    let admin = Admin::new(registry.clone());
    let mut body = get(&admin, "GET", "/breakers/events").await.into_body();
    next_event(&mut body).await;
    assert_eq!(
        registry.hooked_count(),
        1,
        "a connected stream listens to the breaker"
    );
    drop(body);
    assert_eq!(
        registry.hooked_count(),
        0,
        "the last stream took its listener off"
    );
    calls(&mut a, 3, true).await;
    assert_eq!(registry.watcher_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_look_only_reads_and_a_stream_follows_breakers_that_come_and_go() {
    let endpoints = Arc::new(Mutex::new(vec![endpoint("users@a").handle()]));
    let registry = Registry::new();
    let source = Arc::clone(&endpoints);
    registry.add("users", move || source.lock().unwrap().clone());
    registry.snapshot();
    assert_eq!(registry.hooked_count(), 0, "a snapshot adds no listener");

    let admin = Admin::new(registry.clone());
    let mut body = get(&admin, "GET", "/breakers/events").await.into_body();
    next_event(&mut body).await;
    assert_eq!(registry.hooked_count(), 1);
    let b = endpoint("users@b").handle();
    endpoints.lock().unwrap().push(b.clone());
    next_event(&mut body).await;
    assert_eq!(
        registry.hooked_count(),
        2,
        "the next tick hooked the new breaker"
    );

    // Changes of the breaker that came later reach the stream as they happen.
    b.force_open();
    let (name, transition) = next_event(&mut body).await;
    assert_eq!(
        (name.as_str(), &transition["breaker"]),
        ("transition", &Value::from("users@b"))
    );

    endpoints.lock().unwrap().remove(0);
    next_event(&mut body).await;
    assert_eq!(
        registry.hooked_count(),
        1,
        "the breaker that went was unhooked"
    );
}

#[tokio::test]
async fn actions_force_open_force_closed_and_reset_a_breaker_by_name() {
    let a = endpoint("users@http://10.0.0.1:80");
    let handle = a.handle();
    let admin = Admin::new(registry_of(&[&a])).mounted_at("/admin/");
    let path =
        |action: &str| format!("/admin/breakers/users%40http%3A%2F%2F10.0.0.1%3A80/{action}");

    let response = get(&admin, "POST", &path("force-open")).await;
    assert_eq!(response.status(), 200);
    let answer = json_of(response).await;
    assert_eq!(answer["state"], "forced_open");
    assert_eq!(handle.state(), crate::circuit_breaker::State::ForcedOpen);

    get(&admin, "POST", &path("force-closed")).await;
    assert_eq!(handle.state(), crate::circuit_breaker::State::ForcedClosed);
    get(&admin, "POST", &path("reset")).await;
    assert_eq!(handle.state(), crate::circuit_breaker::State::Closed);

    let wrong_method = get(&admin, "GET", &path("force-open")).await;
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    let unknown = get(&admin, "POST", "/admin/breakers/users%40nowhere/force-open").await;
    assert_eq!(unknown.status(), 404);
    assert!(
        json_of(unknown).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("users@nowhere")
    );
    assert_eq!(get(&admin, "POST", &path("explode")).await.status(), 404);
    assert_eq!(
        get(&admin, "GET", "/breakers").await.status(),
        404,
        "outside the mount point"
    );
}

#[tokio::test]
async fn the_page_is_one_self_contained_document() {
    let admin = Admin::new(Registry::new()).mounted_at("/admin");
    assert!(admin.serves("/admin/dashboard"));
    assert!(admin.serves("/admin/breakers/x/reset"));
    assert!(!admin.serves("/admin/status"));
    let response = get(&admin, "GET", "/admin/dashboard").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let page = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(page.contains("new EventSource"));
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!page.contains(external), "the page loads {external}");
    }
}

#[test]
fn breaker_names_are_percent_decoded() {
    assert_eq!(
        percent_decode("users%40http%3A%2F%2Fa%3A1").unwrap(),
        "users@http://a:1"
    );
    assert_eq!(percent_decode("plain").unwrap(), "plain");
    assert_eq!(percent_decode("broken%4"), None);
    assert_eq!(percent_decode("%ff"), None, "not UTF-8");
}

#[test]
fn the_public_types_can_go_anywhere() {
    fn shared<T: Send + Sync + 'static>() {}
    fn sent<T: Send + 'static>() {}
    shared::<Admin>();
    shared::<Registry>();
    shared::<LatencyRecorder>();
    shared::<Latency<()>>();
    sent::<ResponseBody>();
    sent::<ResponseFuture<std::future::Ready<()>>>();
}
