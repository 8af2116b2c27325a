//! The users: what is stored, and the one place that picks the database. Each function here
//! runs the SQLite version (`sqlite.rs`, blocking, on the pool's threads) or the PostgreSQL one
//! (`postgres.rs`, async), with the same results and the same errors, so handlers do not care
//! which database they use.

use demo_kit::AppError;
use demo_kit::database::Database;
use demo_kit::idempotency::Created;
use demo_kit::input::{Listing, Page};
use serde::Serialize;

mod postgres;
mod sqlite;

/// The demo users present on a fresh start (ids 1, 2, 3).
const SEED: [(&str, &str); 3] = [
    ("Ada Lovelace", "ada@example.com"),
    ("Alan Turing", "alan@example.com"),
    ("Grace Hopper", "grace@example.com"),
];

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Id, assigned by the database, never reused.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Email address, unique (case-insensitively).
    pub email: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
}

/// The fields a client sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
}

fn duplicate_email(email: &str) -> AppError {
    AppError::conflict(format!("a user with email {email} already exists"))
}

fn not_found(id: i64) -> AppError {
    AppError::not_found(format!("user {id} not found"))
}

/// Creates or updates the schema and, the first time only, the demo users. Safe when several
/// replicas run it at once, and deleting a demo user later does not bring it back on restart.
///
/// # Errors
/// Database errors.
pub async fn migrate_and_seed(db: &Database) -> Result<(), AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(sqlite::migrate_and_seed).await,
        Database::Postgres(pool) => postgres::migrate_and_seed(pool).await,
    }
}

/// The database answers a query.
///
/// # Errors
/// Database errors.
pub async fn ping(db: &Database) -> Result<(), AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(sqlite::ping).await,
        Database::Postgres(pool) => postgres::ping(pool).await,
    }
}

/// One user.
///
/// # Errors
/// 404 when there is no user `id`; database errors.
pub async fn get(db: &Database, id: i64) -> Result<User, AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(move |c| sqlite::get(c, id)).await,
        Database::Postgres(pool) => postgres::get(pool, id).await,
    }
}

/// A page of users ordered by id; the count and the page are read from one snapshot.
///
/// # Errors
/// Database errors.
pub async fn list(db: &Database, page: Page) -> Result<Listing<User>, AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(move |c| sqlite::list(c, page)).await,
        Database::Postgres(pool) => postgres::list(pool, page).await,
    }
}

/// Stores a new user. With `idempotency` (the key and the request's fingerprint), the answer is
/// recorded in the same transaction, or the one recorded before is returned.
///
/// # Errors
/// 409 on a duplicate email; 422 when the key was used for another request; database errors.
pub async fn create(
    db: &Database,
    user: NewUser,
    idempotency: Option<(String, String)>,
) -> Result<Created, AppError> {
    match db {
        Database::Sqlite(pool) => {
            pool.run(move |c| {
                let idem = idempotency.as_ref().map(|(k, f)| (k.as_str(), f.as_str()));
                sqlite::create(c, &user, idem)
            })
            .await
        }
        Database::Postgres(pool) => {
            let idem = idempotency.as_ref().map(|(k, f)| (k.as_str(), f.as_str()));
            postgres::create(pool, &user, idem).await
        }
    }
}

/// Replaces a user's name and email.
///
/// # Errors
/// 404 when there is no user `id`; 409 on a duplicate email; database errors.
pub async fn update(db: &Database, id: i64, user: NewUser) -> Result<User, AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(move |c| sqlite::update(c, id, &user)).await,
        Database::Postgres(pool) => postgres::update(pool, id, &user).await,
    }
}

/// Deletes a user.
///
/// # Errors
/// 404 when there is no user `id`; database errors.
pub async fn delete(db: &Database, id: i64) -> Result<(), AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(move |c| sqlite::delete(c, id)).await,
        Database::Postgres(pool) => postgres::delete(pool, id).await,
    }
}
