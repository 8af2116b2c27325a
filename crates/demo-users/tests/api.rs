//! In-process tests of every route and every error, through the same stack the binary serves.
//! Each test runs twice, on SQLite and on PostgreSQL (`NAME::sqlite`, `NAME::postgres`).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use bytes::Bytes;
use clap::Parser;
use demo_kit::resource;
use demo_kit::testing::{Backend, TestResponse, from_loopback, json_request, request, send};
use demo_kit::{HttpService, for_each_backend};
use demo_users::{AppState, Config, Users};
use http_body_util::{Full, StreamBody};
use serde_json::{Value, json};

struct TestApp {
    svc: HttpService<Full<Bytes>>,
    state: AppState,
    _backend: Backend,
}

async fn start(backend: Backend, extra: &[&str]) -> TestApp {
    let mut args = vec!["demo-users".to_owned()];
    args.extend(backend.args("users.db"));
    args.extend(["--replica", "users-test"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let state = resource::open::<Users>(&Config::parse_from(args).settings())
        .await
        .unwrap();
    TestApp {
        svc: resource::service::<Users, _>(state.clone()),
        state,
        _backend: backend,
    }
}

impl TestApp {
    async fn get(&self, uri: &str) -> TestResponse {
        self.call(request("GET", uri, "")).await
    }

    async fn send_json(&self, method: &str, uri: &str, body: &Value) -> TestResponse {
        self.call(json_request(method, uri, body)).await
    }

    async fn call(&self, req: http::Request<Full<Bytes>>) -> TestResponse {
        let res = send(&self.svc, req).await;
        assert_eq!(res.header("x-served-by"), Some("users-test"));
        res
    }

    async fn total(&self) -> i64 {
        self.get("/users").await.json()["total"].as_i64().unwrap()
    }
}

for_each_backend!(
    seeded_users_answer_on_a_fresh_start,
    list_is_paginated,
    create_read_update_delete,
    bad_ids_are_400,
    unknown_ids_are_404,
    malformed_json_is_400,
    invalid_fields_are_422_naming_the_field,
    duplicate_email_is_409,
    body_over_64_kib_is_413_with_or_without_content_length,
    wrong_method_is_405_and_unknown_route_is_404,
    head_is_answered_like_get,
    repeated_idempotency_key_returns_the_first_answer,
    concurrent_idempotent_posts_create_one_record,
    ready_is_200_with_the_database_and_503_without_while_health_stays_200,
    full_failure_rate_gives_500_and_turning_it_off_recovers,
    odd_inputs_get_a_clear_answer_and_change_nothing
);

fn user(name: &str, email: &str) -> Value {
    json!({"name": name, "email": email})
}

async fn seeded_users_answer_on_a_fresh_start(backend: Backend) {
    let app = start(backend, &[]).await;
    let res = app.get("/users/1").await;
    assert_eq!(res.status, 200);
    let body = res.json();
    assert_eq!(body["id"], 1);
    assert_eq!(body["email"], "ada@example.com");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.total().await, 3);
}

async fn list_is_paginated(backend: Backend) {
    let app = start(backend, &[]).await;
    let res = app.get("/users?limit=2&offset=1").await;
    assert_eq!(res.status, 200);
    let body = res.json();
    let ids: Vec<i64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3]);
    assert_eq!(
        (body["limit"].as_i64(), body["offset"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(body["total"], 3);
    assert_eq!(app.get("/users?offset=10").await.json()["items"], json!([]));
    for bad in [
        "/users?limit=0",
        "/users?limit=1000",
        "/users?limit=x",
        "/users?offset=-1",
    ] {
        let res = app.get(bad).await;
        assert_eq!(res.status, 400, "{bad}");
        assert_eq!(res.error_code(), "bad_request");
    }
}

async fn create_read_update_delete(backend: Backend) {
    let app = start(backend, &[]).await;
    let res = app
        .send_json(
            "POST",
            "/users",
            &user("Barbara Liskov", "barbara@example.com"),
        )
        .await;
    assert_eq!(res.status, 201);
    let created = res.json();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(app.get(&format!("/users/{id}")).await.json(), created);

    let res = app
        .send_json(
            "PUT",
            &format!("/users/{id}"),
            &user("B. Liskov", "liskov@example.com"),
        )
        .await;
    assert_eq!(res.status, 200);
    let updated = res.json();
    assert_eq!(updated["name"], "B. Liskov");
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_eq!(app.get(&format!("/users/{id}")).await.json(), updated);

    let res = app
        .call(request("DELETE", &format!("/users/{id}"), ""))
        .await;
    assert_eq!(res.status, 204);
    assert!(res.body.is_empty());
    assert_eq!(app.get(&format!("/users/{id}")).await.status, 404);
}

async fn bad_ids_are_400(backend: Backend) {
    let app = start(backend, &[]).await;
    for id in ["abc", "0", "-1", "1.5", "99999999999999999999", "%31"] {
        for method in ["GET", "PUT", "DELETE"] {
            let body = if method == "PUT" {
                user("A", "a@b.co").to_string()
            } else {
                String::new()
            };
            let res = app
                .call(request(method, &format!("/users/{id}"), body))
                .await;
            assert_eq!(res.status, 400, "{method} {id}");
            assert_eq!(res.error_code(), "bad_request");
        }
    }
}

async fn unknown_ids_are_404(backend: Backend) {
    let app = start(backend, &[]).await;
    let res = app.get("/users/4242").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.error_code(), "not_found");
    assert!(
        res.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4242")
    );
    let res = app
        .send_json("PUT", "/users/4242", &user("A", "a@b.co"))
        .await;
    assert_eq!(res.status, 404);
    let res = app.call(request("DELETE", "/users/4242", "")).await;
    assert_eq!(res.status, 404);
}

async fn malformed_json_is_400(backend: Backend) {
    let app = start(backend, &[]).await;
    for body in ["{", "", "not json", "{\"name\": \"a\",}"] {
        for (method, uri) in [("POST", "/users"), ("PUT", "/users/1")] {
            let res = app.call(request(method, uri, body)).await;
            assert_eq!(res.status, 400, "{method} {body:?}");
            assert_eq!(res.error_code(), "bad_request");
        }
    }
    assert_eq!(app.total().await, 3);
}

async fn invalid_fields_are_422_naming_the_field(backend: Backend) {
    let app = start(backend, &[]).await;
    let cases = [
        (json!({"email": "a@b.co"}), "name"),
        (json!({"name": "", "email": "a@b.co"}), "name"),
        (json!({"name": "   ", "email": "a@b.co"}), "name"),
        (json!({"name": 7, "email": "a@b.co"}), "name"),
        (json!({"name": "x".repeat(201), "email": "a@b.co"}), "name"),
        (json!({"name": "A"}), "email"),
        (json!({"name": "A", "email": "not-an-email"}), "email"),
        (json!({"name": "A", "email": "a@b"}), "email"),
        (json!({"name": "A", "email": ["a@b.co"]}), "email"),
    ];
    for (body, field) in cases {
        for (method, uri) in [("POST", "/users"), ("PUT", "/users/1")] {
            let res = app.send_json(method, uri, &body).await;
            assert_eq!(res.status, 422, "{method} {body}");
            assert_eq!(res.error_code(), "validation_failed");
            assert_eq!(res.json()["error"]["field"], field, "{body}");
            assert!(
                res.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(field)
            );
        }
    }
    let res = app.send_json("POST", "/users", &json!([1, 2])).await;
    assert_eq!(res.status, 422);
    assert_eq!(app.total().await, 3);
    assert_eq!(app.get("/users/1").await.json()["name"], "Ada Lovelace");
}

async fn duplicate_email_is_409(backend: Backend) {
    let app = start(backend, &[]).await;
    let res = app
        .send_json("POST", "/users", &user("Ada again", "ada@example.com"))
        .await;
    assert_eq!(res.status, 409);
    assert_eq!(res.error_code(), "conflict");
    // Case does not make an address different.
    let res = app
        .send_json("POST", "/users", &user("Ada again", "ADA@example.com"))
        .await;
    assert_eq!(res.status, 409);
    let res = app
        .send_json("PUT", "/users/2", &user("Alan", "ada@example.com"))
        .await;
    assert_eq!(res.status, 409);
    assert_eq!(
        app.get("/users/2").await.json()["email"],
        "alan@example.com"
    );
    assert_eq!(app.total().await, 3);
}

async fn body_over_64_kib_is_413_with_or_without_content_length(backend: Backend) {
    let app = start(backend, &[]).await;
    let big = format!(
        r#"{{"name": "{}", "email": "big@example.com"}}"#,
        "x".repeat(70_000)
    );

    let mut req = request("POST", "/users", big.clone());
    req.headers_mut().insert("content-length", big.len().into());
    let res = app.call(req).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.error_code(), "payload_too_large");

    // Chunked: a stream of frames and no Content-Length.
    let svc: HttpService<StreamBody<_>> = resource::service::<Users, _>(app.state.clone());
    let frames = big
        .into_bytes()
        .chunks(8 * 1024)
        .map(|c| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::copy_from_slice(c)))
        })
        .collect::<Vec<_>>();
    let req = http::Request::post("/users")
        .body(StreamBody::new(futures::stream::iter(frames)))
        .unwrap();
    let res = send(&svc, req).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.error_code(), "payload_too_large");
    assert_eq!(app.total().await, 3);
}

async fn wrong_method_is_405_and_unknown_route_is_404(backend: Backend) {
    let app = start(backend, &[]).await;
    for (method, uri) in [
        ("PATCH", "/users/1"),
        ("POST", "/users/1"),
        ("DELETE", "/users"),
        ("PUT", "/health"),
    ] {
        let res = app.call(request(method, uri, "")).await;
        assert_eq!(res.status, 405, "{method} {uri}");
        assert_eq!(res.error_code(), "method_not_allowed");
        assert!(res.header("allow").is_some());
    }
    for uri in ["/", "/user/1", "/users/1/orders", "/nope"] {
        let res = app.get(uri).await;
        assert_eq!(res.status, 404, "{uri}");
        assert_eq!(res.error_code(), "not_found");
    }
}

async fn head_is_answered_like_get(backend: Backend) {
    let app = start(backend, &[]).await;
    assert_eq!(app.call(request("HEAD", "/users/1", "")).await.status, 200);
}

async fn repeated_idempotency_key_returns_the_first_answer(backend: Backend) {
    let app = start(backend, &[]).await;
    let post = |body: Value, key: &'static str| {
        let mut req = json_request("POST", "/users", &body);
        req.headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        req
    };
    let body = user("Edsger Dijkstra", "edsger@example.com");
    let first = app.call(post(body.clone(), "key-1")).await;
    assert_eq!(first.status, 201);
    // Same content, keys in another order: the same request.
    let same = json!({"email": "edsger@example.com", "name": "Edsger Dijkstra"});
    let again = app.call(post(same, "key-1")).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
    assert_eq!(app.total().await, 4);

    let other = app
        .call(post(user("Someone Else", "else@example.com"), "key-1"))
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(other.error_code(), "idempotency_key_reused");
    assert_eq!(app.total().await, 4);

    // Without the key a repeat is a new request (here: a duplicate email).
    assert_eq!(app.send_json("POST", "/users", &body).await.status, 409);

    let mut bad = json_request("POST", "/users", &user("K", "k@example.com"));
    bad.headers_mut()
        .insert("idempotency-key", "".parse().unwrap());
    assert_eq!(app.call(bad).await.status, 400);
}

async fn concurrent_idempotent_posts_create_one_record(backend: Backend) {
    let app = start(backend, &[]).await;
    let body = user("Tony Hoare", "tony@example.com");
    let calls = (0..20).map(|_| {
        let mut req = json_request("POST", "/users", &body);
        req.headers_mut()
            .insert("idempotency-key", "same".parse().unwrap());
        app.call(req)
    });
    let answers = futures::future::join_all(calls).await;
    let ids: std::collections::HashSet<i64> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201);
            r.json()["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.total().await, 4);
}

async fn ready_is_200_with_the_database_and_503_without_while_health_stays_200(backend: Backend) {
    let app = start(backend, &[]).await;
    let res = app.get("/ready").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["status"], "ready");
    assert_eq!(app.get("/health").await.json()["status"], "ok");
    app.state.close().await;
    let res = app.get("/ready").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.error_code(), "database_unavailable");
    // Liveness does not depend on the database: restarting the replica would not fix it.
    assert_eq!(app.get("/health").await.status, 200);
    // Other routes say so too, in the error shape.
    let res = app.get("/users/1").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.error_code(), "service_unavailable");
}

async fn full_failure_rate_gives_500_and_turning_it_off_recovers(backend: Backend) {
    let app = start(backend, &["--fault-failure-rate", "1.0"]).await;
    for _ in 0..10 {
        let res = app
            .send_json("POST", "/users", &user("F", "f@example.com"))
            .await;
        assert_eq!(res.status, 500);
        assert_eq!(res.error_code(), "injected_fault");
    }
    assert_eq!(app.get("/users/1").await.status, 500);

    // Only loopback peers may change the setting.
    let off = json!({"latency_ms": 0, "failure_rate": 0.0});
    assert_eq!(
        app.send_json("PUT", "/admin/faults", &off).await.status,
        403
    );
    let res = app
        .call(from_loopback(json_request("PUT", "/admin/faults", &off)))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.get("/users/1").await.status, 200);
    // Injected failures wrote nothing.
    assert_eq!(app.total().await, 3);
}

async fn odd_inputs_get_a_clear_answer_and_change_nothing(backend: Backend) {
    let app = start(backend, &[]).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<Vec<u8>> = vec![
        deep.into_bytes(),
        b"\xff\xfe\x00garbage".to_vec(),
        br#"{"name": 1e400, "email": "a@b.co"}"#.to_vec(),
        br#"{"name": "A\u0000B", "email": 9223372036854775808}"#.to_vec(),
        b"null".to_vec(),
        b"\"just a string\"".to_vec(),
    ];
    for body in bodies {
        for (method, uri) in [("POST", "/users"), ("PUT", "/users/1")] {
            let res = app.call(request(method, uri, body.clone())).await;
            assert!(
                res.status == 400 || res.status == 422,
                "{method} {:?}: {}",
                String::from_utf8_lossy(&body),
                res.status
            );
            res.error_code();
        }
    }
    // Unicode is fine.
    let res = app
        .send_json(
            "POST",
            "/users",
            &user("Ada Łovelace 😀", "ada.unicode@example.com"),
        )
        .await;
    assert_eq!(res.status, 201);
    assert_eq!(res.json()["name"], "Ada Łovelace 😀");
    assert_eq!(app.total().await, 4);
    assert_eq!(app.get("/users/1").await.json()["name"], "Ada Lovelace");
}
