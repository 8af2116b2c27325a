//! The users table on SQLite: schema, seed data and queries. Every function runs on a pooled
//! connection (blocking); writes use `BEGIN IMMEDIATE` so concurrent writers, in this process or
//! another replica, queue on the busy timeout instead of failing.

use demo_kit::AppError;
use demo_kit::idempotency::{self, Created};
use demo_kit::input::{Listing, Page};
use demo_kit::sqlite::is_unique_violation;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{NewUser, SEED, User, duplicate_email, not_found};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        created_at: row.get(3)?,
    })
}

/// Creates the schema and, the first time only, the demo users. Safe when several replicas run
/// it at once: the whole step is one `BEGIN IMMEDIATE` transaction, and the `meta` row says
/// whether seeding happened, so deleting a demo user later does not bring it back on restart.
///
/// # Errors
/// Database errors.
pub(super) fn migrate_and_seed(conn: &mut Connection) -> Result<(), AppError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(idempotency::SCHEMA)?;
    let first = tx.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('seeded', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        [],
    )? == 1;
    if first {
        for (name, email) in SEED {
            tx.execute(
                "INSERT INTO users (name, email) VALUES (?1, ?2)",
                params![name, email],
            )?;
        }
        tracing::info!(users = SEED.len(), "seeded demo users");
    }
    tx.commit()?;
    Ok(())
}

/// The database answers a query.
///
/// # Errors
/// Database errors.
pub(super) fn ping(conn: &mut Connection) -> Result<(), AppError> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |_| Ok(()))?;
    Ok(())
}

/// One user.
///
/// # Errors
/// 404 when there is no user `id`; database errors.
pub(super) fn get(conn: &mut Connection, id: i64) -> Result<User, AppError> {
    conn.query_row(
        "SELECT id, name, email, created_at FROM users WHERE id = ?1",
        params![id],
        user_from_row,
    )
    .optional()?
    .ok_or_else(|| not_found(id))
}

/// A page of users ordered by id.
///
/// # Errors
/// Database errors.
pub(super) fn list(conn: &mut Connection, page: Page) -> Result<Listing<User>, AppError> {
    // One read transaction, so the count and the page agree.
    let tx = conn.transaction()?;
    let total = tx.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
    let items = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, name, email, created_at FROM users ORDER BY id LIMIT ?1 OFFSET ?2",
        )?;
        stmt.query_map(params![page.limit, page.offset], user_from_row)?
            .collect::<Result<Vec<_>, _>>()?
    };
    tx.commit()?;
    Ok(page.listing(items, total))
}

/// Stores a new user; with an idempotency key, records the answer in the same transaction or
/// returns the recorded one.
///
/// # Errors
/// 409 on a duplicate email; 422 when the key was used for another request; database errors.
pub(super) fn create(
    conn: &mut Connection,
    user: &NewUser,
    idempotency: Option<(&str, &str)>,
) -> Result<Created, AppError> {
    idempotency::create_once(conn, idempotency, |tx| {
        let created = tx
            .query_row(
                "INSERT INTO users (name, email) VALUES (?1, ?2)
                 RETURNING id, name, email, created_at",
                params![user.name, user.email],
                user_from_row,
            )
            .map_err(|err| {
                if is_unique_violation(&err) {
                    duplicate_email(&user.email)
                } else {
                    err.into()
                }
            })?;
        serde_json::to_string(&created).map_err(AppError::internal)
    })
}

/// Replaces a user's name and email.
///
/// # Errors
/// 404 when there is no user `id`; 409 on a duplicate email; database errors.
pub(super) fn update(conn: &mut Connection, id: i64, user: &NewUser) -> Result<User, AppError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let updated = tx
        .query_row(
            "UPDATE users SET name = ?1, email = ?2 WHERE id = ?3
             RETURNING id, name, email, created_at",
            params![user.name, user.email, id],
            user_from_row,
        )
        .optional()
        .map_err(|err| {
            if is_unique_violation(&err) {
                duplicate_email(&user.email)
            } else {
                err.into()
            }
        })?
        .ok_or_else(|| not_found(id))?;
    tx.commit()?;
    Ok(updated)
}

/// Deletes a user.
///
/// # Errors
/// 404 when there is no user `id`; database errors.
pub(super) fn delete(conn: &mut Connection, id: i64) -> Result<(), AppError> {
    match conn.execute("DELETE FROM users WHERE id = ?1", params![id])? {
        0 => Err(not_found(id)),
        _ => Ok(()),
    }
}
