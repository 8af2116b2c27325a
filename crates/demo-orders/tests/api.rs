//! In-process tests of every route and every error, through the same stack the binary serves.
//! Each test runs twice, on SQLite and on PostgreSQL (`NAME::sqlite`, `NAME::postgres`).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use bytes::Bytes;
use clap::Parser;
use demo_kit::database::Database;
use demo_kit::resource;
use demo_kit::testing::{Backend, TestResponse, from_loopback, json_request, request, send};
use demo_kit::{HttpService, for_each_backend};
use demo_orders::storage::{self, Item, NewOrder};
use demo_orders::{AppState, Config, Orders};
use http_body_util::{Full, StreamBody};
use serde_json::{Value, json};

struct TestApp {
    svc: HttpService<Full<Bytes>>,
    state: AppState,
    _backend: Backend,
}

async fn start(backend: Backend, extra: &[&str]) -> TestApp {
    let mut args = vec!["demo-orders".to_owned()];
    args.extend(backend.args("orders.db"));
    args.extend(["--replica", "orders-test"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let state = resource::open::<Orders>(&Config::parse_from(args).settings())
        .await
        .unwrap();
    TestApp {
        svc: resource::service::<Orders, _>(state.clone()),
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
        assert_eq!(res.header("x-served-by"), Some("orders-test"));
        res
    }

    async fn total(&self) -> i64 {
        self.get("/orders").await.json()["total"].as_i64().unwrap()
    }

    async fn item_rows(&self) -> i64 {
        const COUNT: &str = "SELECT count(*) FROM order_items";
        match &self.state.db {
            Database::Sqlite(pool) => pool
                .run(|c| {
                    c.query_row(COUNT, [], |r| r.get(0))
                        .map_err(demo_kit::AppError::from)
                })
                .await
                .unwrap(),
            Database::Postgres(pool) => pool
                .get()
                .await
                .unwrap()
                .query_one(COUNT, &[])
                .await
                .unwrap()
                .get(0),
        }
    }
}

for_each_backend!(
    seeded_orders_answer_on_a_fresh_start,
    total_is_computed_not_taken_from_the_client,
    update_replaces_items_and_recomputes_the_total,
    delete_removes_the_order_and_its_items,
    list_is_paginated_and_filters_by_user,
    bad_ids_are_400_and_unknown_ids_404,
    malformed_json_is_400,
    invalid_fields_are_422_naming_the_field,
    body_over_64_kib_is_413_with_or_without_content_length,
    wrong_method_is_405_and_unknown_route_is_404,
    repeated_idempotency_key_returns_the_first_answer,
    an_order_and_its_items_are_written_together_or_not_at_all,
    ready_is_200_with_the_database_and_503_without_while_health_stays_200,
    full_failure_rate_gives_500_and_turning_it_off_recovers
);

fn order(user_id: i64) -> Value {
    json!({
        "user_id": user_id,
        "items": [
            {"name": "Keyboard", "quantity": 2, "unit_price_cents": 4_500},
            {"name": "Mouse", "quantity": 1, "unit_price_cents": 1_999}
        ]
    })
}

async fn seeded_orders_answer_on_a_fresh_start(backend: Backend) {
    let app = start(backend, &[]).await;
    let res = app.get("/orders/1").await;
    assert_eq!(res.status, 200);
    let body = res.json();
    assert_eq!(body["user_id"], 1);
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    assert_eq!(body["total_cents"], 3 * 1_250 + 4_999);
    assert_eq!(app.total().await, 2);
}

async fn total_is_computed_not_taken_from_the_client(backend: Backend) {
    let app = start(backend, &[]).await;
    let mut body = order(7);
    body["total_cents"] = json!(1);
    let res = app.send_json("POST", "/orders", &body).await;
    assert_eq!(res.status, 201);
    let created = res.json();
    assert_eq!(created["total_cents"], 2 * 4_500 + 1_999);
    assert_eq!(created["status"], "pending");
    assert_eq!(created["items"][1]["name"], "Mouse");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(app.get(&format!("/orders/{id}")).await.json(), created);
}

async fn update_replaces_items_and_recomputes_the_total(backend: Backend) {
    let app = start(backend, &[]).await;
    let body = json!({"user_id": 1, "status": "shipped",
                      "items": [{"name": "Lamp", "quantity": 3, "unit_price_cents": 1_000}]});
    let res = app.send_json("PUT", "/orders/1", &body).await;
    assert_eq!(res.status, 200);
    let updated = res.json();
    assert_eq!(updated["total_cents"], 3_000);
    assert_eq!(updated["status"], "shipped");
    assert_eq!(updated["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/orders/1").await.json(), updated);
    // Seed: 2 + 1 items; order 1 now has 1 instead of 2.
    assert_eq!(app.item_rows().await, 2);
}

async fn delete_removes_the_order_and_its_items(backend: Backend) {
    let app = start(backend, &[]).await;
    let res = app.call(request("DELETE", "/orders/1", "")).await;
    assert_eq!(res.status, 204);
    assert_eq!(app.get("/orders/1").await.status, 404);
    assert_eq!(
        app.call(request("DELETE", "/orders/1", "")).await.status,
        404
    );
    assert_eq!(app.item_rows().await, 1);
}

async fn list_is_paginated_and_filters_by_user(backend: Backend) {
    let app = start(backend, &[]).await;
    for user in [5, 5, 6] {
        assert_eq!(
            app.send_json("POST", "/orders", &order(user)).await.status,
            201
        );
    }
    let page = app.get("/orders?user_id=5").await.json();
    assert_eq!(page["total"], 2);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["user_id"] == 5)
    );
    let page = app.get("/orders?limit=2&offset=1").await.json();
    assert_eq!(page["total"], 5);
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3]);
    assert!(
        page["items"][0]["items"]
            .as_array()
            .is_some_and(|i| !i.is_empty())
    );
    // Each order on a page has its own items, as one order read alone has them.
    let everything = app.get("/orders?limit=100").await.json();
    for listed in everything["items"].as_array().unwrap() {
        let alone = app.get(&format!("/orders/{}", listed["id"])).await.json();
        assert_eq!(listed["items"], alone["items"], "{listed}");
    }
    for bad in [
        "/orders?user_id=abc",
        "/orders?user_id=0",
        "/orders?limit=0",
        "/orders?offset=x",
    ] {
        let res = app.get(bad).await;
        assert_eq!(res.status, 400, "{bad}");
        assert_eq!(res.error_code(), "bad_request");
    }
}

async fn bad_ids_are_400_and_unknown_ids_404(backend: Backend) {
    let app = start(backend, &[]).await;
    for id in ["abc", "0", "-3", "99999999999999999999"] {
        for method in ["GET", "PUT", "DELETE"] {
            let body = if method == "PUT" {
                order(1).to_string()
            } else {
                String::new()
            };
            let res = app
                .call(request(method, &format!("/orders/{id}"), body))
                .await;
            assert_eq!(res.status, 400, "{method} {id}");
        }
    }
    for method in ["GET", "PUT", "DELETE"] {
        let body = if method == "PUT" {
            order(1).to_string()
        } else {
            String::new()
        };
        let res = app.call(request(method, "/orders/999", body)).await;
        assert_eq!(res.status, 404, "{method}");
        assert_eq!(res.error_code(), "not_found");
    }
}

async fn malformed_json_is_400(backend: Backend) {
    let app = start(backend, &[]).await;
    for body in ["{", "", "{\"user_id\": 1,, }"] {
        for (method, uri) in [("POST", "/orders"), ("PUT", "/orders/1")] {
            let res = app.call(request(method, uri, body)).await;
            assert_eq!(res.status, 400, "{method} {body:?}");
            assert_eq!(res.error_code(), "bad_request");
        }
    }
}

async fn invalid_fields_are_422_naming_the_field(backend: Backend) {
    let app = start(backend, &[]).await;
    let item = |name: Value, quantity: Value, price: Value| {
        json!({"user_id": 1, "items": [
            {"name": "Fine", "quantity": 1, "unit_price_cents": 1},
            {"name": name, "quantity": quantity, "unit_price_cents": price}
        ]})
    };
    let cases = [
        (json!({"items": order(1)["items"]}), "user_id"),
        (json!({"user_id": 0, "items": order(1)["items"]}), "user_id"),
        (
            json!({"user_id": "1", "items": order(1)["items"]}),
            "user_id",
        ),
        (json!({"user_id": 1}), "items"),
        (json!({"user_id": 1, "items": []}), "items"),
        (json!({"user_id": 1, "items": {}}), "items"),
        (json!({"user_id": 1, "items": [7]}), "items[0]"),
        (item(json!(""), json!(1), json!(1)), "items[1].name"),
        (item(json!("A"), json!(0), json!(1)), "items[1].quantity"),
        (item(json!("A"), json!(-2), json!(1)), "items[1].quantity"),
        (item(json!("A"), json!(1.5), json!(1)), "items[1].quantity"),
        (
            item(json!("A"), json!(1), json!(-1)),
            "items[1].unit_price_cents",
        ),
        (
            item(json!("A"), json!(1), Value::Null),
            "items[1].unit_price_cents",
        ),
        (
            json!({"user_id": 1, "items": order(1)["items"], "status": "lost"}),
            "status",
        ),
    ];
    for (body, field) in cases {
        for (method, uri) in [("POST", "/orders"), ("PUT", "/orders/1")] {
            let res = app.send_json(method, uri, &body).await;
            assert_eq!(res.status, 422, "{method} {body}");
            assert_eq!(res.error_code(), "validation_failed");
            assert_eq!(res.json()["error"]["field"], field, "{body}");
        }
    }
    assert_eq!(app.total().await, 2);
    assert_eq!(app.get("/orders/1").await.json()["status"], "paid");
}

async fn body_over_64_kib_is_413_with_or_without_content_length(backend: Backend) {
    let app = start(backend, &[]).await;
    let big = json!({"user_id": 1, "items": [{"name": "x".repeat(70_000), "quantity": 1, "unit_price_cents": 1}]})
        .to_string();
    let mut req = request("POST", "/orders", big.clone());
    req.headers_mut().insert("content-length", big.len().into());
    let res = app.call(req).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.error_code(), "payload_too_large");

    let svc: HttpService<StreamBody<_>> = resource::service::<Orders, _>(app.state.clone());
    let frames = big
        .into_bytes()
        .chunks(4096)
        .map(|c| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::copy_from_slice(c)))
        })
        .collect::<Vec<_>>();
    let req = http::Request::post("/orders")
        .body(StreamBody::new(futures::stream::iter(frames)))
        .unwrap();
    let res = send(&svc, req).await;
    assert_eq!(res.status, 413);
    assert_eq!(app.total().await, 2);
}

async fn wrong_method_is_405_and_unknown_route_is_404(backend: Backend) {
    let app = start(backend, &[]).await;
    for (method, uri) in [
        ("PATCH", "/orders/1"),
        ("POST", "/orders/1"),
        ("PUT", "/orders"),
    ] {
        let res = app.call(request(method, uri, "")).await;
        assert_eq!(res.status, 405, "{method} {uri}");
        assert_eq!(res.error_code(), "method_not_allowed");
    }
    for uri in ["/order", "/orders/1/items", "/users/1"] {
        let res = app.get(uri).await;
        assert_eq!(res.status, 404, "{uri}");
        assert_eq!(res.error_code(), "not_found");
    }
}

async fn repeated_idempotency_key_returns_the_first_answer(backend: Backend) {
    let app = start(backend, &[]).await;
    let post = |body: &Value, key: &str| {
        let mut req = json_request("POST", "/orders", body);
        req.headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        req
    };
    let first = app.call(post(&order(9), "order-key")).await;
    assert_eq!(first.status, 201);
    let again = app.call(post(&order(9), "order-key")).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    assert_eq!(app.total().await, 3);
    assert_eq!(app.item_rows().await, 3 + 2);
    let other = app.call(post(&order(10), "order-key")).await;
    assert_eq!(other.status, 422);
    assert_eq!(other.error_code(), "idempotency_key_reused");
    assert_eq!(app.total().await, 3);
}

async fn an_order_and_its_items_are_written_together_or_not_at_all(backend: Backend) {
    let app = start(backend, &[]).await;
    // Bypass validation: the second item breaks a CHECK constraint after the order row and the
    // first item were inserted inside the transaction.
    let bad = NewOrder {
        user_id: 3,
        items: vec![
            Item {
                name: "ok".into(),
                quantity: 1,
                unit_price_cents: 5,
            },
            Item {
                name: "bad".into(),
                quantity: 0,
                unit_price_cents: 5,
            },
        ],
        status: "pending".into(),
    };
    let err = storage::create(&app.state.db, bad, None).await.unwrap_err();
    assert_eq!(err.status(), 500);
    assert_eq!(app.total().await, 2);
    assert_eq!(app.item_rows().await, 3);
    // The same for an update: order 1 keeps its items.
    let before = app.get("/orders/1").await.json();
    let bad = NewOrder {
        user_id: 1,
        items: vec![Item {
            name: String::new(),
            quantity: 1,
            unit_price_cents: 1,
        }],
        status: "paid".into(),
    };
    assert!(storage::update(&app.state.db, 1, bad).await.is_err());
    assert_eq!(app.get("/orders/1").await.json(), before);
}

async fn ready_is_200_with_the_database_and_503_without_while_health_stays_200(backend: Backend) {
    let app = start(backend, &[]).await;
    assert_eq!(app.get("/ready").await.status, 200);
    assert_eq!(app.get("/health").await.status, 200);
    app.state.close().await;
    let res = app.get("/ready").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.error_code(), "database_unavailable");
    // Liveness does not depend on the database: restarting the replica would not fix it.
    assert_eq!(app.get("/health").await.status, 200);
}

async fn full_failure_rate_gives_500_and_turning_it_off_recovers(backend: Backend) {
    let app = start(backend, &["--fault-failure-rate", "1"]).await;
    let res = app.send_json("POST", "/orders", &order(1)).await;
    assert_eq!(res.status, 500);
    assert_eq!(res.error_code(), "injected_fault");
    let off = json!({"failure_rate": 0.0});
    assert_eq!(
        app.send_json("PUT", "/admin/faults", &off).await.status,
        403
    );
    assert_eq!(
        app.call(from_loopback(json_request("PUT", "/admin/faults", &off)))
            .await
            .status,
        200
    );
    assert_eq!(
        app.send_json("POST", "/orders", &order(1)).await.status,
        201
    );
    assert_eq!(app.total().await, 3);
}
