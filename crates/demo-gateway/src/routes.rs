//! The gateway app and how it is served.

use std::future::Future;

use demo_kit::{HttpService, RustApiService, Stack, serve};
use rustapi_rs::{RustApi, get};
use tokio::net::TcpListener;
use tower::Layer;

use crate::edge::EdgeLayer;
use crate::handlers::{self, Orders, Users};
use crate::state::GatewayState;

/// Every route, with `state` attached; registered explicitly, never with `RustApi::auto()`
/// (this binary also links the services, whose macro routes it would collect).
pub fn app(state: GatewayState) -> RustApi {
    RustApi::new()
        .state(state)
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        .route("/admin/status", get(handlers::admin_status))
        .route(
            "/api/users",
            get(handlers::list::<Users>).post(handlers::create::<Users>),
        )
        .route(
            "/api/users/{id}",
            get(handlers::show::<Users>)
                .put(handlers::update::<Users>)
                .delete(handlers::delete::<Users>),
        )
        .route("/api/users/{id}/orders", get(handlers::user_with_orders))
        .route(
            "/api/orders",
            get(handlers::list::<Orders>).post(handlers::create::<Orders>),
        )
        .route(
            "/api/orders/{id}",
            get(handlers::show::<Orders>)
                .put(handlers::update::<Orders>)
                .delete(handlers::delete::<Orders>),
        )
}

/// The app behind the edge (keys, rate limits, request counts) and the shared serving layers
/// (request ids, tracing, JSON errors, the 64 KiB body limit, `x-served-by: gateway`).
pub fn service<B>(state: GatewayState) -> HttpService<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<demo_kit::BoxError>,
{
    let stack = Stack::new()
        .with_served_by("gateway")
        .with_route_templates(|path| Some(crate::route_of(path)).filter(|route| *route != "other"));
    let app = RustApiService::new(&app(state.clone()), stack.body_limit());
    stack.wrap(EdgeLayer::new(state).layer(app))
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains in-flight requests.
///
/// # Errors
/// I/O errors from serving.
pub async fn run(
    listener: TcpListener,
    state: GatewayState,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    // The dashboard's streams never end by themselves: end them, so the drain can finish.
    let registry = state.admin().registry().clone();
    let shutdown = async move {
        shutdown.await;
        registry.close();
    };
    serve(listener, service(state), shutdown).await
}
