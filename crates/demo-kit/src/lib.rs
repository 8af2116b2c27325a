//! Serving code shared by the demo services (`demo-users`, `demo-orders`, `demo-gateway`).
//!
//! All three services are [rustapi-rs](https://docs.rs/rustapi-rs) apps, but rustapi-rs's own
//! `run()` cannot serve a listener you bound (so tests cannot use `127.0.0.1:0`), cuts in-flight
//! requests on shutdown and accepts no tower layers. This crate replaces it, once, for all three,
//! and holds what the services would otherwise each write again. Each module, what it is for,
//! and why it is not a dependency instead:
//!
//! | module | for | why ours |
//! |---|---|---|
//! | `serve` ([`serve`]) | the accept loop: a tower service on a bound listener, drained on shutdown (hyper-util's `GracefulShutdown`) | rustapi-rs's `run()` binds its own address and never drains |
//! | `dispatch` ([`RustApiService`]) | a rustapi-rs app's `request_dispatcher()` as a tower service | rustapi-rs takes no tower layers |
//! | `stack` ([`Stack`]) | the tower-http layers around it: request ids, tracing, the one body cap, JSON errors, faults | the composition; the layers are tower-http's where tower-http has them |
//! | `json_errors` | `x-served-by`, and one JSON error shape for answers rustapi-rs and tower-http make | rustapi-rs answers its 404/405/extractor errors in its own shape |
//! | `error` ([`AppError`]) | the one error type with the one mapping to HTTP (`{"error": {"code", "message"}}`) | the project's error contract |
//! | [`input`], [`response`] | ids, pagination and JSON bodies into 400/422 errors that name the field; JSON answers with any status | rustapi-rs's `Json<T>` answers 400 for a missing field and cannot set a status |
//! | `extract` ([`PeerAddr`], [`RawQuery`]) | the connection's peer address and the raw query | rustapi-rs's `ClientIp` trusts `X-Forwarded-For` and its server never records the peer; its `Query<T>` answers in its own shape |
//! | [`telemetry`] (and `request_log`) | logs and OpenTelemetry traces set up once; the caller's W3C context continued; log lines carry the request's ids without a span per request | the span per request cost a tenth of the gateway's work (see `request_log`) |
//! | [`faults`] | injected latency, 500s and stalled bodies, switchable at run time (`/admin/faults`) | demo and test tooling |
//! | [`proxy_client`] | the reqwest client a proxy forwards through, shared by the gateway and the bench's `reqwest-floor` | reqwest's defaults are a web client's |
//! | `shutdown`, `service_main` ([`shutdown_signal`], [`run_service`]) | SIGTERM/Ctrl-C; what every service binary does after parsing its flags | a few lines each, written once |
//! | [`register`] | a replica registering itself in etcd under a lease (`--register`) | the etcd client is etcd-client's; this is the lease's life cycle |
//! | `sqlite` (feature `sqlite`) | how a SQLite connection is opened for sharing one file, in deadpool's pool | deadpool-sqlite pins an older rusqlite |
//! | `idempotency` (feature `sqlite`) | `Idempotency-Key` on POST, in the service's own database | an application concern |
//! | `postgres`, `database`, `Replica` (feature `postgres`) | PostgreSQL as the alternative, the `Database` that is either, and what a replica holds | deadpool-postgres, refinery underneath |
//! | `resource` (feature `postgres`) | a service of one resource (users, orders), written once: app, probes, layers, `main` | the two services differed in names only |
//! | `testing` (feature `testing`) | in-process calls, child-process guards, throwaway PostgreSQL, etcd and DNS servers | test tooling |
//!
//! ```no_run
//! use demo_kit::{Stack, serve, shutdown_signal};
//! use rustapi_core::{RustApi, get};
//!
//! async fn hello() -> &'static str {
//!     "hello"
//! }
//!
//! # async fn example() -> std::io::Result<()> {
//! let app = RustApi::new().route("/", get(hello));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let service = Stack::new().with_served_by("hello-1").service(&app);
//! serve(listener, service, shutdown_signal()).await
//! # }
//! ```

#[cfg(feature = "postgres")]
pub mod database;
mod dispatch;
mod error;
mod extract;
pub mod faults;
#[cfg(feature = "sqlite")]
pub mod idempotency;
pub mod input;
mod json_errors;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod proxy_client;
pub mod register;
#[cfg(feature = "postgres")]
mod replica;
mod request_log;
#[cfg(feature = "postgres")]
pub mod resource;
pub mod response;
mod serve;
mod service_main;
mod shutdown;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod stack;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use dispatch::RustApiService;
pub use error::{AppError, ErrorCode};
pub use extract::{PeerAddr, RawQuery};
#[cfg(feature = "postgres")]
pub use replica::Replica;
pub use serve::{
    DEFAULT_DRAIN_TIMEOUT, LISTENING_PREFIX, announce_listening, serve, serve_with_drain_timeout,
};
pub use service_main::run_service;
pub use shutdown::shutdown_signal;
pub use stack::{
    BoxError, DEFAULT_BODY_LIMIT, HttpResponse, HttpService, ResponseBody, RouteOf, Stack,
    resource_route_of,
};
pub use telemetry::{Telemetry, TelemetryArgs, init_telemetry, init_tracing};

/// The header every response carries to say which replica served it.
pub const SERVED_BY: &str = "x-served-by";

/// The request-id header kept from the request (or made) and echoed on the response.
pub const REQUEST_ID: &str = "x-request-id";
