//! The gateway app (its router over the route table) and how it is served.

use std::future::Future;

use demo_kit::{HttpService, RustApiService, Stack, serve};
use rustapi_rs::{RustApi, get};
use tokio::net::TcpListener;
use tower::Layer;

use crate::edge::EdgeLayer;
use crate::handlers::{self, Orders, Users};
use crate::routes;
use crate::state::GatewayState;

/// Every route, with `state` attached; registered explicitly, never with `RustApi::auto()`
/// (this binary also links the services, whose macro routes it would collect).
pub fn app(state: GatewayState) -> RustApi {
    routed(RustApi::new().state(state))
}

/// `app` with the gateway's routes, their paths from the route table.
fn routed(app: RustApi) -> RustApi {
    app.route(routes::HEALTH, get(handlers::health))
        .route(routes::READY, get(handlers::ready))
        .route(routes::METRICS, get(handlers::metrics))
        .route(routes::ADMIN_STATUS, get(handlers::admin_status))
        .route(
            routes::USERS,
            get(handlers::list::<Users>).post(handlers::create::<Users>),
        )
        .route(
            routes::USER,
            get(handlers::show::<Users>)
                .put(handlers::update::<Users>)
                .delete(handlers::delete::<Users>),
        )
        .route(routes::USER_ORDERS, get(handlers::user_with_orders))
        .route(
            routes::ORDERS,
            get(handlers::list::<Orders>).post(handlers::create::<Orders>),
        )
        .route(
            routes::ORDER,
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
        .with_route_templates(routes::template_of);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use resilience::admin::{Admin, Registry};

    use super::*;

    /// Every template of the route table is answered by exactly one of the router and the
    /// admin service, and the router registers no path outside the table.
    #[test]
    fn the_router_and_the_admin_service_answer_the_route_table() {
        let app = routed(RustApi::new());
        let registered: BTreeSet<&str> = app
            .router()
            .registered_routes()
            .values()
            .map(|route| route.path.as_str())
            .collect();
        let admin = Admin::new(Registry::new()).mounted_at(routes::ADMIN);
        for path in &registered {
            assert!(
                routes::TEMPLATES.contains(path),
                "{path} is routed but not in the route table"
            );
        }
        for template in routes::TEMPLATES {
            let concrete = template.replace("{name}", "users%40x").replace("{id}", "1");
            assert!(
                registered.contains(template) != admin.serves(&concrete),
                "{template}: routed {}, served by the admin service {}",
                registered.contains(template),
                admin.serves(&concrete)
            );
        }
    }
}
