//! The orders service of the demo: orders with their items on rustapi-rs over SQLite, or
//! PostgreSQL with `--database-url`.
//!
//! An order has a user id, items (name, quantity, unit price in cents), a total in cents that
//! the service computes (a client's total is ignored), a status and a creation time. An order
//! and its items are written in one transaction. Every response carries
//! `x-served-by: <replica>`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /orders?limit=&offset=&user_id=` | a page: `{"items": [...], "limit", "offset", "total"}` |
//! | `GET /orders/{id}` | an order `{"id", "user_id", "items", "total_cents", "status", "created_at"}` |
//! | `POST /orders` | 201 and the new order; `Idempotency-Key` makes a repeat replay the first answer |
//! | `PUT /orders/{id}` | the updated order (user, status and items replaced, total recomputed) |
//! | `DELETE /orders/{id}` | 204 |
//! | `GET /health` | 200 while the process serves (liveness) |
//! | `GET /ready` | 200 when the database answers, else 503 (readiness) |
//! | `GET`/`PUT /admin/faults` | fault injection, loopback peers only |
//!
//! Errors are `{"error": {"code", "message"}}`: 400 bad id, query or malformed JSON, 404 unknown
//! id or route, 405 wrong method, 413 body over 64 KiB, 422 invalid field (named, e.g.
//! `items[1].quantity`).

//!
//! The service is a [`Resource`] ([`Orders`]): its app, probes,
//! serving layers and `main` are demo-kit's, shared with the other service; this crate has its
//! flags, handlers and storage.

mod config;
mod handlers;
pub mod storage;

use demo_kit::AppError;
use demo_kit::database::Database;
use demo_kit::resource::Resource;
use rustapi_rs::{MethodRouter, get};

pub use config::Config;

/// What every handler shares: the replica's database, name and fault setting.
pub type AppState = demo_kit::Replica;

/// The orders service, as a resource: `/orders` and `/orders/{id}` over its storage.
#[derive(Debug, Clone, Copy)]
pub struct Orders;

impl Resource for Orders {
    const NAME: &'static str = "orders";
    const COLLECTION: &'static str = "/orders";
    const ITEM: &'static str = "/orders/{id}";

    fn collection() -> MethodRouter {
        get(handlers::list).post(handlers::create)
    }

    fn item() -> MethodRouter {
        get(handlers::show)
            .put(handlers::update)
            .delete(handlers::delete)
    }

    async fn migrate_and_seed(db: &Database) -> Result<(), AppError> {
        storage::migrate_and_seed(db).await
    }

    async fn ping(db: &Database) -> Result<(), AppError> {
        storage::ping(db).await
    }
}
