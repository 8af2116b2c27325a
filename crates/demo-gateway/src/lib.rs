//! The demo's API gateway: the public entry point in front of the users and order services.
//!
//! - `/api/users...` and `/api/orders...` are proxied through one [`ResilientClient`] per
//!   upstream (deadline → retry → hedge → load-aware balancer → per-endpoint breaker →
//!   attempt timeout → reqwest); `/api/users/{id}/orders` aggregates a user with their orders.
//! - API keys and per-key rate limits guard everything but `/health` and `/ready`.
//! - Every failure becomes a status in one place ([`failure`]): open breakers 503 with
//!   `Retry-After`, timeouts 504, unreachable or failing upstreams 502.
//! - Endpoints may change while it runs ([`discovery`]: DNS or etcd), and `--mesh` leaves
//!   retries and breaking to a service mesh.
//! - `/admin/status` and `/metrics` show the breakers and the balancer's view of each endpoint,
//!   from one snapshot (`status`); transitions are logged as they happen;
//!   `/admin/dashboard` draws them live. Everything under `/admin`, and `/metrics`, needs an
//!   operator key ([`AdminKeys`]), distinct from client keys.
//!
//! Its modules import one way (`tests/module_graph.rs` fails on a cycle): `config`, `routes`
//! (the one route table), `access` (keys, cookies, grants) and `failure` (statuses from plain
//! values) are leaves or near them; `upstream`, `state`, `edge` and `app` build on them; `demo`
//! and `launcher` (the one-command demo and its banner) sit on top, apart from the gateway.
//!
//! [`ResilientClient`]: resilience::http::ResilientClient

mod access;
mod app;
pub mod config;
pub mod demo;
pub mod discovery;
mod edge;
pub mod failure;
mod handlers;
pub mod launcher;
mod metrics;
mod routes;
mod state;
mod status;
pub mod upstream;

pub use access::{AdminKeys, ApiKeys};
pub use app::{app, run, service};
pub use routes::route_of;
pub use state::GatewayState;
