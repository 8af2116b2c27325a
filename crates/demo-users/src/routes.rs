//! The app (routes and state) and how it is served.

use std::future::Future;

use demo_kit::{HttpService, Stack, faults};
use rustapi_rs::{RustApi, get};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::handlers;
use crate::state::AppState;

/// The rustapi-rs app: every route, with `state` attached. Routes are registered explicitly
/// (never `RustApi::auto()`, which would also collect other services' macro routes).
pub fn app(state: AppState) -> RustApi {
    let faults = state.faults.clone();
    let app = RustApi::new()
        .state(state)
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/users", get(handlers::list).post(handlers::create))
        .route(
            "/users/{id}",
            get(handlers::show)
                .put(handlers::update)
                .delete(handlers::delete),
        );
    faults::routes(app, faults)
}

/// The serving layers for `state`'s replica: `x-served-by`, request ids, tracing (spans named
/// by [`route_of`]), JSON errors, the 64 KiB body limit and fault injection.
pub fn stack(state: &AppState) -> Stack {
    state.stack().with_route_templates(route_of)
}

/// The route template of `path`, naming its server span (`GET /users/{id}`, never the raw
/// path); `None` for a path no route serves.
pub fn route_of(path: &str) -> Option<&'static str> {
    demo_kit::resource_route_of(path, "/users", "/users/{id}")
}

/// The app as a tower service over any request body (in-process tests use `Full<Bytes>`).
pub fn service<B>(state: AppState) -> HttpService<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<demo_kit::BoxError>,
{
    stack(&state).service(&app(state))
}

/// Serves the users service on `listener` until `shutdown` completes; then stops accepting,
/// finishes in-flight requests and closes the database.
///
/// # Errors
/// I/O errors from serving.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    state
        .serve(listener, service(state.clone()), shutdown)
        .await
}

/// The users service's `main` after parsing `config`: opens the database, binds, announces the
/// address, registers in etcd with `--register`, and serves until `shutdown`, then leaves etcd,
/// drains and closes the database. Used by the
/// `demo-users` binary and by the gateway's demo launcher.
pub async fn main_with(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::process::ExitCode {
    let name = format!(
        "users service {} (database {})",
        config.replica,
        config.location()
    );
    demo_kit::run_service(
        &name,
        config.listen,
        config.registration(),
        AppState::open(&config),
        shutdown,
        run,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn spans_are_named_by_route_template() {
        assert_eq!(route_of("/users/42"), Some("/users/{id}"));
        assert_eq!(route_of("/users"), Some("/users"));
        assert_eq!(route_of("/users/"), Some("/users"));
        assert_eq!(route_of("/health"), Some("/health"));
        assert_eq!(route_of("/ready"), Some("/ready"));
        assert_eq!(route_of("/admin/faults"), Some("/admin/faults"));
        assert_eq!(route_of("/users/42/x"), None);
        assert_eq!(route_of("/elsewhere"), None);
    }
}
