//! The users service of the demo: CRUD for users on rustapi-rs over SQLite, or PostgreSQL with
//! `--database-url`.
//!
//! Several replicas (processes) can share one database file: the file is in WAL mode with a
//! busy timeout, writes take the write lock up front, and a write through one replica is read
//! through another at once. Replicas on different machines share a PostgreSQL database instead;
//! the answers are the same. Every response carries `x-served-by: <replica>`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /users?limit=&offset=` | a page: `{"items": [...], "limit", "offset", "total"}` |
//! | `GET /users/{id}` | a user `{"id", "name", "email", "created_at"}` |
//! | `POST /users` | 201 and the new user; `Idempotency-Key` makes a repeat replay the first answer |
//! | `PUT /users/{id}` | the updated user (name and email replaced) |
//! | `DELETE /users/{id}` | 204 |
//! | `GET /health` | 200 while the process serves (liveness) |
//! | `GET /ready` | 200 when the database answers, else 503 (readiness) |
//! | `GET`/`PUT /admin/faults` | fault injection, loopback peers only |
//!
//! Errors are `{"error": {"code", "message"}}`: 400 bad id or malformed JSON, 404 unknown id or
//! route, 405 wrong method, 409 duplicate email, 413 body over 64 KiB, 422 invalid field (named).

//!
//! The service is a [`Resource`] ([`Users`]): its app, probes,
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

/// The users service, as a resource: `/users` and `/users/{id}` over its storage.
#[derive(Debug, Clone, Copy)]
pub struct Users;

impl Resource for Users {
    const NAME: &'static str = "users";
    const COLLECTION: &'static str = "/users";
    const ITEM: &'static str = "/users/{id}";

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
