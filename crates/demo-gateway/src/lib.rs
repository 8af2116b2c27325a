//! The demo's API gateway: the public entry point in front of the users and order services.
//!
//! - `/api/users...` and `/api/orders...` are proxied through one [`ResilientClient`] per
//!   upstream (deadline → retry → round robin → per-endpoint breaker → attempt timeout →
//!   reqwest); `/api/users/{id}/orders` aggregates a user with their orders.
//! - API keys and per-key rate limits guard everything but `/health` and `/ready`.
//! - Every failure becomes a status in one place ([`failure`]): open breakers 503 with
//!   `Retry-After`, timeouts 504, unreachable or failing upstreams 502.
//! - Endpoints may change while it runs ([`discovery`]: DNS or etcd), and `--mesh` leaves
//!   retries and breaking to a service mesh.
//! - `/admin/status` and `/metrics` show the breakers; transitions are logged as they happen;
//!   `/admin/dashboard` draws them live. Everything under `/admin`, and `/metrics`, needs an
//!   operator key ([`AdminKeys`]), distinct from client keys.
//!
//! [`ResilientClient`]: resilience::http::ResilientClient

mod admin;
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
pub mod upstream;

pub use admin::AdminKeys;
pub use edge::{ApiKeys, route_of};
pub use routes::{app, run, service};
pub use state::GatewayState;
