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

mod config;
mod handlers;
mod routes;
mod state;
pub mod storage;

pub use config::Config;
pub use routes::{app, main_with, route_of, run, service, stack};
pub use state::AppState;
