//! Serving code shared by the demo services (`demo-users`, `demo-orders`, `demo-gateway`).
//!
//! All three services are [rustapi-rs](https://docs.rs/rustapi-rs) apps, but rustapi-rs's own
//! `run()` cannot serve a listener you bound (so tests cannot use `127.0.0.1:0`), cuts in-flight
//! requests on shutdown and accepts no tower layers. This crate replaces it, once, for all three:
//!
//! - [`Stack`] turns a [`RustApi`](rustapi_core::RustApi) app into a tower
//!   [`HttpService`]: the app's `request_dispatcher()` behind tower-http layers for tracing,
//!   request ids (an incoming `x-request-id` is kept, otherwise one is made, and it is echoed on
//!   the response), a request body limit that also catches chunked bodies, optional fault
//!   injection, an `x-served-by` header, and one JSON error shape for every error, including the
//!   404/405/413 answers produced outside the handlers.
//! - [`serve`] runs any such service on a bound [`tokio::net::TcpListener`] and, when the shutdown
//!   future completes, stops accepting and drains in-flight requests.
//! - [`AppError`] is the one error type with the one mapping to HTTP
//!   (`{"error": {"code": "...", "message": "..."}}`).
//! - [`register`]: a replica registering itself in etcd under a lease it keeps alive, and
//!   leaving the set on graceful shutdown (`--register etcd://HOST:PORT/PREFIX`).
//! - [`shutdown_signal`] completes on SIGTERM or Ctrl-C; [`init_telemetry`] sets up logging
//!   and OpenTelemetry tracing (W3C trace context in, spans exported with `--otlp-endpoint`;
//!   [`telemetry`]);
//!   [`announce_listening`] prints the bound address for a parent process.
//! - [`faults`]: injected latency and 500s, switchable at run time through `/admin/faults`.
//! - [`input`] and [`response`]: parsing ids, pagination and JSON bodies into 400/422 errors that
//!   name the field, and building JSON answers (rustapi-rs's `Json<T>` cannot set a status).
//!
//! Features: `sqlite` adds a small rusqlite connection pool (`sqlite`) and `Idempotency-Key`
//! storage (`idempotency`) for the services; `postgres` adds PostgreSQL as the alternative
//! (`postgres`), the [`Database`](database::Database) that is either, and [`Replica`];
//! `testing` adds helpers for tests (`testing`), among them throwaway PostgreSQL, etcd and
//! DNS (dnsmasq) servers.
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
pub mod register;
#[cfg(feature = "postgres")]
mod replica;
mod request_id;
mod request_log;
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
