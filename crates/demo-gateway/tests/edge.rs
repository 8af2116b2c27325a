//! The gateway's edge, in process: API keys, rate limits, input checks and size limits are
//! enforced before anything goes upstream. The upstreams here refuse connections, so any request
//! that got past the edge would show up as a 502/503 and as a call in `/admin/status`.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use bytes::Bytes;
use clap::Parser;
use demo_gateway::GatewayState;
use demo_gateway::config::Cli;
use demo_gateway::upstream::Upstream;
use demo_kit::testing::{request, send};
use http_body_util::Full;

/// The operator key of [`gateway`].
const OPERATOR: &str = "op-1";

/// A port nothing listens on.
fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn gateway(extra: &[&str]) -> demo_kit::HttpService<Full<Bytes>> {
    let (users, orders) = (refused_url(), refused_url());
    let mut args = vec![
        "demo-gateway",
        "--no-spawn",
        "--users",
        &users,
        "--orders",
        &orders,
        "--api-key",
        "k1,k2",
        "--admin-key",
        OPERATOR,
    ];
    args.extend_from_slice(extra);
    let config = Cli::try_parse_from(args).unwrap().gateway;
    let keys = demo_gateway::ApiKeys::new(
        config.api_keys.clone(),
        std::num::NonZeroU32::new(config.rate_limit).unwrap(),
        std::num::NonZeroU32::new(config.rate_burst).unwrap(),
    );
    let users = Upstream::new("user-service", "users", &config.users, &config.upstream).unwrap();
    let orders =
        Upstream::new("order-service", "orders", &config.orders, &config.upstream).unwrap();
    let admin_keys = demo_gateway::AdminKeys::new(config.admin_keys.clone()).unwrap();
    demo_gateway::service(GatewayState::with_admin_keys(
        users, orders, keys, admin_keys,
    ))
}

fn with_key(mut req: http::Request<Full<Bytes>>, key: &str) -> http::Request<Full<Bytes>> {
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    req
}

async fn upstream_calls(service: &demo_kit::HttpService<Full<Bytes>>) -> u64 {
    let status = send(
        service,
        with_key(request("GET", "/admin/status", ""), OPERATOR),
    )
    .await
    .json();
    status["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|upstream| upstream["endpoints"].as_array().unwrap().clone())
        .map(|endpoint| {
            endpoint["calls"].as_u64().unwrap() + endpoint["failures"].as_u64().unwrap()
        })
        .sum()
}

#[tokio::test]
async fn a_missing_or_unknown_key_is_401_json() {
    let service = gateway(&[]);
    let missing = send(&service, request("GET", "/api/users/1", "")).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error_code(), "unauthorized");
    assert!(
        missing.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-api-key")
    );
    let wrong = send(
        &service,
        with_key(request("GET", "/api/users/1", ""), "nope"),
    )
    .await;
    assert_eq!(wrong.status, 401);
    for path in ["/admin/status", "/metrics", "/api/orders"] {
        assert_eq!(
            send(&service, request("GET", path, "")).await.status,
            401,
            "{path} needs a key"
        );
    }
    assert_eq!(upstream_calls(&service).await, 0);
}

#[tokio::test]
async fn health_and_ready_need_no_key() {
    let service = gateway(&[]);
    let health = send(&service, request("GET", "/health", "")).await;
    assert_eq!(
        (health.status.as_u16(), health.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = send(&service, request("GET", "/ready", "")).await;
    assert_eq!(ready.status, 200, "no breaker has opened yet");
}

#[tokio::test]
async fn a_bearer_token_is_a_key_too() {
    let service = gateway(&[]);
    let mut req = request("GET", "/api/users/abc", "");
    req.headers_mut()
        .insert("authorization", "Bearer k2".parse().unwrap());
    assert_eq!(send(&service, req).await.status, 400, "past the key check");
}

#[tokio::test]
async fn each_key_has_its_own_rate_limit() {
    let service = gateway(&["--rate-limit", "1", "--rate-burst", "3"]);
    for _ in 0..3 {
        assert_eq!(
            send(
                &service,
                with_key(request("GET", "/api/users/abc", ""), "k1")
            )
            .await
            .status,
            400
        );
    }
    let limited = send(
        &service,
        with_key(request("GET", "/api/users/abc", ""), "k1"),
    )
    .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.error_code(), "too_many_requests");
    assert_eq!(limited.header("retry-after"), Some("1"));
    let other = send(
        &service,
        with_key(request("GET", "/api/users/abc", ""), "k2"),
    )
    .await;
    assert_eq!(other.status, 400, "another key has its own bucket");
}

#[tokio::test]
async fn bad_ids_are_400_and_never_reach_an_upstream() {
    let service = gateway(&[]);
    for path in [
        "/api/users/abc",
        "/api/users/-1",
        "/api/users/0",
        "/api/users/99999999999999999999",
        "/api/users/1%2F..%2Fadmin",
        "/api/orders/1.5",
        "/api/users/x/orders",
    ] {
        let answer = send(&service, with_key(request("GET", path, ""), "k1")).await;
        assert_eq!(answer.status, 400, "{path}");
        assert_eq!(answer.error_code(), "bad_request", "{path}");
    }
    let bad_query = send(
        &service,
        with_key(request("GET", "/api/users?limit=1000", ""), "k1"),
    )
    .await;
    assert_eq!(bad_query.status, 400);
    assert_eq!(upstream_calls(&service).await, 0);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let service = gateway(&[]);
    let unknown = send(&service, with_key(request("GET", "/api/nothing", ""), "k1")).await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.error_code()),
        (404, "not_found".to_owned())
    );
    let wrong = send(
        &service,
        with_key(request("PATCH", "/api/users/1", "{}"), "k1"),
    )
    .await;
    assert_eq!(wrong.status, 405);
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let service = gateway(&[]);
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let answer = send(
        &service,
        with_key(request("POST", "/api/users", huge), "k1"),
    )
    .await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.error_code(), "payload_too_large");
    assert_eq!(upstream_calls(&service).await, 0);
}

#[tokio::test]
async fn a_dead_upstream_is_a_json_502_then_503_once_its_breaker_opens() {
    let service = gateway(&["--breaker-failures", "2", "--max-attempts", "1"]);
    let first = send(&service, with_key(request("GET", "/api/users/1", ""), "k1")).await;
    assert_eq!(
        (first.status.as_u16(), first.error_code()),
        (502, "bad_gateway".to_owned())
    );
    assert!(
        first.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user-service")
    );
    for _ in 0..3 {
        send(&service, with_key(request("GET", "/api/users/1", ""), "k1")).await;
    }
    let open = send(&service, with_key(request("GET", "/api/users/1", ""), "k1")).await;
    assert_eq!(
        (open.status.as_u16(), open.error_code()),
        (503, "service_unavailable".to_owned())
    );
    let retry_after: u64 = open.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    let ready = send(&service, request("GET", "/ready", "")).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["upstreams"]["user-service"], false);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let service = gateway(&[]);
    send(
        &service,
        with_key(request("GET", "/api/users/abc", ""), "k1"),
    )
    .await;
    send(&service, request("GET", "/api/users/7", "")).await;
    let metrics = send(&service, with_key(request("GET", "/metrics", ""), OPERATOR)).await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    assert!(
        text.contains(
            r#"gateway_requests_total{route="/api/users/{id}",method="GET",status="400"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"gateway_requests_total{route="/api/users/{id}",method="GET",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("gateway_breaker_state{upstream=\"user-service\""),
        "{text}"
    );
    // The balancer's view, from the same snapshot as /admin/status: nothing outstanding, nothing
    // ejected, no slow start (the endpoints were there from the start).
    for (metric, value) in [
        ("gateway_endpoint_outstanding", "0"),
        ("gateway_endpoint_ejected", "0"),
        ("gateway_endpoint_slow_start_weight", "1.0"),
    ] {
        let prefix = format!("{metric}{{upstream=\"user-service\",endpoint=\"http://127.0.0.1:");
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(lines.len(), 1, "{metric} in {text}");
        assert!(lines[0].ends_with(&format!("}} {value}")), "{}", lines[0]);
    }
}

/// Every operator route, with the method it takes.
const ADMIN_ROUTES: [(&str, &str); 8] = [
    ("GET", "/admin/status"),
    ("GET", "/metrics"),
    ("GET", "/admin/dashboard"),
    ("GET", "/admin/breakers"),
    ("GET", "/admin/breakers/events"),
    ("POST", "/admin/breakers/users%40nowhere/force-open"),
    ("POST", "/admin/breakers/users%40nowhere/force-closed"),
    ("POST", "/admin/breakers/users%40nowhere/reset"),
];

/// The status and error code of `method path` with `key`; the body is read only when it is not
/// the event stream (which never ends).
async fn status_of(
    service: &demo_kit::HttpService<Full<Bytes>>,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> (u16, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = request(method, path, "");
    if let Some(key) = key {
        req = with_key(req, key);
    }
    let response = service.clone().oneshot(req).await.unwrap();
    let status = response.status().as_u16();
    if response.headers().get("content-type").map(|v| v.as_bytes()) == Some(b"text/event-stream") {
        return (status, String::new());
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

#[tokio::test]
async fn every_admin_route_is_401_without_a_key_and_403_with_a_client_key() {
    let service = gateway(&[]);
    for (method, path) in ADMIN_ROUTES {
        assert_eq!(
            status_of(&service, method, path, None).await,
            (401, "unauthorized".to_owned()),
            "{method} {path} without a key"
        );
        assert_eq!(
            status_of(&service, method, path, Some("k1")).await,
            (403, "forbidden".to_owned()),
            "{method} {path} with a client key"
        );
        assert_eq!(
            status_of(&service, method, path, Some("not-a-key")).await.0,
            401,
            "{method} {path} with an unknown key"
        );
        let (status, _) = status_of(&service, method, path, Some(OPERATOR)).await;
        let expected = if path.contains("nowhere") { 404 } else { 200 };
        assert_eq!(status, expected, "{method} {path} with the operator key");
    }
    // And an operator key is no client key.
    assert_eq!(
        status_of(&service, "GET", "/api/users/1", Some(OPERATOR))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn the_dashboard_opened_with_the_key_in_its_query_sets_a_strict_http_only_cookie() {
    use tower::ServiceExt;
    let service = gateway(&[]);
    let page = service
        .clone()
        .oneshot(request(
            "GET",
            &format!("/admin/dashboard?key={OPERATOR}"),
            "",
        ))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap();

    // The stream and the actions ride on the cookie; the query works for the page alone.
    let mut events = request("GET", "/admin/breakers/events", "");
    events.headers_mut().insert("cookie", pair.parse().unwrap());
    assert_eq!(service.clone().oneshot(events).await.unwrap().status(), 200);
    let queried = format!("/admin/breakers/events?key={OPERATOR}");
    assert_eq!(status_of(&service, "GET", &queried, None).await.0, 401);
    let status_with_query = format!("/admin/status?key={OPERATOR}");
    assert_eq!(
        status_of(&service, "GET", &status_with_query, None).await.0,
        401
    );
}

#[tokio::test]
async fn the_snapshot_lists_every_endpoint_and_actions_change_its_breaker() {
    let service = gateway(&[]);
    let snapshot = send(
        &service,
        with_key(request("GET", "/admin/breakers", ""), OPERATOR),
    )
    .await
    .json();
    let upstreams: Vec<&str> = snapshot["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|upstream| upstream["name"].as_str().unwrap())
        .collect();
    assert_eq!(upstreams, ["users", "orders"]);
    let name = snapshot["upstreams"][0]["endpoints"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let encoded = name
        .replace('@', "%40")
        .replace(':', "%3A")
        .replace('/', "%2F");
    let forced = send(
        &service,
        with_key(
            request("POST", &format!("/admin/breakers/{encoded}/force-open"), ""),
            OPERATOR,
        ),
    )
    .await;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.json()["state"], "forced_open");
    let status = send(
        &service,
        with_key(request("GET", "/admin/status", ""), OPERATOR),
    )
    .await
    .json();
    assert_eq!(
        status["upstreams"][0]["endpoints"][0]["state"],
        "forced_open"
    );
    // One snapshot behind both views: the same endpoints, names and balancer fields.
    assert_eq!(status["upstreams"][0]["service"], "user-service");
    assert_eq!(status["upstreams"][0]["name"], "users");
    let endpoint = &status["upstreams"][0]["endpoints"][0];
    assert_eq!(endpoint["name"].as_str(), Some(name.as_str()));
    assert_eq!(endpoint["balancing"]["outstanding"], 0, "{endpoint}");
    assert!(
        endpoint["balancing"]["ejected_for_ms"].is_null(),
        "{endpoint}"
    );
}
