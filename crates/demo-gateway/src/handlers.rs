//! The routes: proxies to the services, the aggregation, probes and the operator's views.

use bytes::Bytes;
use demo_kit::input::{Page, parse_id, query_int};
use demo_kit::{AppError, RawQuery, response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rustapi_rs::{Body, Headers, Path, State};
use serde_json::{Value, json};

use crate::failure::{self, Reply};
use crate::state::GatewayState;
use crate::upstream::Upstream;

type Result<T, E = AppError> = std::result::Result<T, E>;
type Response = rustapi_rs::Response;

/// The header telling clients which replica answered behind the gateway.
const UPSTREAM_SERVED_BY: &str = "x-upstream-served-by";

/// Sends a request upstream and shapes the answer: 2xx wrapped as `{"service", "data"}`, 4xx
/// passed through as the service's JSON error; everything else was mapped in [`failure`].
async fn relay(
    upstream: &Upstream,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<Bytes>,
) -> Result<Response> {
    let reply = upstream.send(method, path, headers, body).await?;
    let served_by = reply.served_by.clone();
    let mut answer = shape(upstream, reply);
    if let Some(name) = served_by {
        answer.headers_mut().insert(UPSTREAM_SERVED_BY, name);
    }
    Ok(answer)
}

fn shape(upstream: &Upstream, reply: Reply) -> Response {
    let Reply { status, body, .. } = reply;
    if status == StatusCode::NO_CONTENT {
        response::no_content()
    } else if status.is_success() {
        json_response(status, wrap(upstream.service, &body))
    } else {
        // The service's own JSON error, with its status: the client's mistake, told as it was.
        json_response(status, body)
    }
}

/// `{"service": SERVICE, "data": BODY}`, spliced rather than parsed and written again: the
/// services are ours and say their bodies are JSON, and the gateway's hot path should not pay
/// for a JSON round trip per request.
fn wrap(service: &str, body: &[u8]) -> Bytes {
    let mut wrapped = Vec::with_capacity(body.len() + service.len() + 24);
    wrapped.extend_from_slice(b"{\"service\":\"");
    wrapped.extend_from_slice(service.as_bytes());
    wrapped.extend_from_slice(b"\",\"data\":");
    wrapped.extend_from_slice(body);
    wrapped.push(b'}');
    Bytes::from(wrapped)
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = http::Response::new(rustapi_rs::ResponseBody::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A collection the gateway proxies: where it lives upstream and which service holds it.
pub(crate) trait Resource: Send + Sync + 'static {
    /// Its path on the upstream, e.g. `/users`.
    const PATH: &'static str;
    /// Integer query parameters passed on besides `limit` and `offset`.
    const FILTERS: &'static [&'static str];
    /// The service that holds it.
    fn upstream(state: &GatewayState) -> &Upstream;
}

/// `/api/users` → the users service's `/users`.
pub(crate) struct Users;

/// `/api/orders` → the order service's `/orders`, which can be filtered by `user_id`.
pub(crate) struct Orders;

impl Resource for Users {
    const PATH: &'static str = "/users";
    const FILTERS: &'static [&'static str] = &[];

    fn upstream(state: &GatewayState) -> &Upstream {
        state.users()
    }
}

impl Resource for Orders {
    const PATH: &'static str = "/orders";
    const FILTERS: &'static [&'static str] = &["user_id"];

    fn upstream(state: &GatewayState) -> &Upstream {
        state.orders()
    }
}

/// `GET /api/{resource}?limit=&offset=` (and the resource's filters): every parameter is
/// checked here and rebuilt, so nothing but validated numbers reaches the service.
pub(crate) async fn list<R: Resource>(
    State(state): State<GatewayState>,
    query: RawQuery,
    Headers(headers): Headers,
) -> Result<Response> {
    let page = Page::from_query(&query)?;
    let mut path = format!("{}?limit={}&offset={}", R::PATH, page.limit, page.offset);
    for filter in R::FILTERS {
        if let Some(value) = query_int(&query, filter, 1, i64::MAX)? {
            path.push_str(&format!("&{filter}={value}"));
        }
    }
    relay(R::upstream(&state), Method::GET, &path, &headers, None).await
}

/// `POST /api/{resource}`.
pub(crate) async fn create<R: Resource>(
    State(state): State<GatewayState>,
    Headers(headers): Headers,
    Body(body): Body,
) -> Result<Response> {
    relay(
        R::upstream(&state),
        Method::POST,
        R::PATH,
        &headers,
        Some(body),
    )
    .await
}

/// `GET /api/{resource}/{id}`.
pub(crate) async fn show<R: Resource>(
    State(state): State<GatewayState>,
    Path(id): Path<String>,
    Headers(headers): Headers,
) -> Result<Response> {
    let path = format!("{}/{}", R::PATH, parse_id(&id)?);
    relay(R::upstream(&state), Method::GET, &path, &headers, None).await
}

/// `PUT /api/{resource}/{id}`.
pub(crate) async fn update<R: Resource>(
    State(state): State<GatewayState>,
    Path(id): Path<String>,
    Headers(headers): Headers,
    Body(body): Body,
) -> Result<Response> {
    let path = format!("{}/{}", R::PATH, parse_id(&id)?);
    relay(
        R::upstream(&state),
        Method::PUT,
        &path,
        &headers,
        Some(body),
    )
    .await
}

/// `DELETE /api/{resource}/{id}`.
pub(crate) async fn delete<R: Resource>(
    State(state): State<GatewayState>,
    Path(id): Path<String>,
    Headers(headers): Headers,
) -> Result<Response> {
    let path = format!("{}/{}", R::PATH, parse_id(&id)?);
    relay(R::upstream(&state), Method::DELETE, &path, &headers, None).await
}

/// The most orders the aggregation shows for one user.
const AGGREGATED_ORDERS: i64 = Page::MAX_LIMIT;

/// `GET /api/users/{id}/orders`: the user and their orders, fetched at the same time. Without
/// the user there is no answer (404, or the failure); without the orders the answer comes
/// anyway, with `"missing": ["orders"]` and why.
pub(crate) async fn user_with_orders(
    State(state): State<GatewayState>,
    Path(id): Path<String>,
    Headers(headers): Headers,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let user_path = format!("/users/{id}");
    let orders_path = format!("/orders?user_id={id}&limit={AGGREGATED_ORDERS}");
    let (user, orders) = tokio::join!(
        state.users().send(Method::GET, &user_path, &headers, None),
        state
            .orders()
            .send(Method::GET, &orders_path, &headers, None),
    );
    let user = user?;
    if !user.status.is_success() {
        return Ok(shape(state.users(), user));
    }
    let user: Value = serde_json::from_slice(&user.body)
        .map_err(|_| failure::not_json(state.users().service, user.status))?;
    let orders = orders.and_then(|reply| {
        if reply.status.is_success() {
            serde_json::from_slice::<Value>(&reply.body)
                .map_err(|_| failure::not_json(state.orders().service, reply.status))
        } else {
            Err(failure::unexpected_status(
                state.orders().service,
                reply.status,
            ))
        }
    });
    let body = match orders {
        Ok(page) => json!({
            "service": "gateway",
            "data": {"user": user, "orders": page["items"], "orders_total": page["total"]},
        }),
        Err(error) => json!({
            "service": "gateway",
            "data": {"user": user, "orders": []},
            "missing": ["orders"],
            "errors": {"orders": error.body()["error"]},
        }),
    };
    Ok(response::json(StatusCode::OK, &body))
}

/// `GET /health`: the gateway itself is up.
pub(crate) async fn health() -> Response {
    response::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /ready`: 200 when every upstream has an endpoint admitting traffic, 503 otherwise.
pub(crate) async fn ready(State(state): State<GatewayState>) -> Response {
    let upstreams = [state.users(), state.orders()];
    let detail: serde_json::Map<String, Value> = upstreams
        .iter()
        .map(|upstream| (upstream.service.to_owned(), json!(upstream.is_ready())))
        .collect();
    let not_ready: Vec<&str> = upstreams
        .iter()
        .filter(|upstream| !upstream.is_ready())
        .map(|upstream| upstream.service)
        .collect();
    if not_ready.is_empty() {
        return response::json(
            StatusCode::OK,
            &json!({"status": "ready", "upstreams": detail}),
        );
    }
    let mut body = AppError::unavailable(format!(
        "no endpoint admits traffic for: {}",
        not_ready.join(", ")
    ))
    .body();
    body["upstreams"] = Value::Object(detail);
    response::json(StatusCode::SERVICE_UNAVAILABLE, &body)
}

/// `GET /admin/status`: every upstream and endpoint: its breaker's state and counts, its latency
/// and what the load-aware balancer knows of it (outstanding calls, estimate, slow start,
/// ejection), from the same snapshot as `/admin/breakers`.
pub(crate) async fn admin_status(State(state): State<GatewayState>) -> Response {
    response::json(
        StatusCode::OK,
        &json!({"upstreams": state.upstreams().look()}),
    )
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<GatewayState>) -> Result<Response> {
    let text = state.metrics().render().map_err(AppError::internal)?;
    let mut response = http::Response::new(rustapi_rs::ResponseBody::from(text));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}
