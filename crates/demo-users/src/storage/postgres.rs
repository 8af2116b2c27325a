//! The users table on PostgreSQL: the same answers as [`super::sqlite`]. The schema is in
//! `migrations/` (applied by refinery at start-up); seeding is done here, once, as on SQLite.
//! Reads that need one snapshot (a count and a page) run in a read-only `REPEATABLE READ`
//! transaction; single-statement writes need none.

use demo_kit::AppError;
use demo_kit::idempotency::{self, Created};
use demo_kit::input::{Listing, Page};
use demo_kit::postgres::{Pool, is_unique_violation};
use tokio_postgres::{IsolationLevel, Row};

use super::{NewUser, SEED, User, duplicate_email, not_found};

mod embedded {
    refinery::embed_migrations!("migrations");
}

fn user_from_row(row: &Row) -> Result<User, tokio_postgres::Error> {
    Ok(User {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        email: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

/// A duplicate email is a 409; anything else keeps its own meaning.
fn unique_email(err: tokio_postgres::Error, email: &str) -> AppError {
    if is_unique_violation(&err) {
        duplicate_email(email)
    } else {
        err.into()
    }
}

pub(super) async fn migrate_and_seed(pool: &Pool) -> Result<(), AppError> {
    pool.migrate(embedded::migrations::runner()).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if demo_kit::postgres::claim_seeding(&tx).await? {
        for (name, email) in SEED {
            tx.execute(
                "INSERT INTO users (name, email) VALUES ($1, $2)",
                &[&name, &email],
            )
            .await?;
        }
        tracing::info!(users = SEED.len(), "seeded demo users");
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn ping(pool: &Pool) -> Result<(), AppError> {
    pool.get()
        .await?
        .query_one("SELECT EXISTS (SELECT 1 FROM users)", &[])
        .await?;
    Ok(())
}

pub(super) async fn get(pool: &Pool, id: i64) -> Result<User, AppError> {
    pool.get()
        .await?
        .query_opt(
            "SELECT id, name, email, created_at FROM users WHERE id = $1",
            &[&id],
        )
        .await?
        .map(|row| user_from_row(&row))
        .transpose()?
        .ok_or_else(|| not_found(id))
}

pub(super) async fn list(pool: &Pool, page: Page) -> Result<Listing<User>, AppError> {
    let mut client = pool.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let total = tx
        .query_one("SELECT count(*) FROM users", &[])
        .await?
        .try_get(0)?;
    let items = tx
        .query(
            "SELECT id, name, email, created_at FROM users ORDER BY id LIMIT $1 OFFSET $2",
            &[&page.limit, &page.offset],
        )
        .await?
        .iter()
        .map(user_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok(page.listing(items, total))
}

pub(super) async fn create(
    pool: &Pool,
    user: &NewUser,
    idempotency: Option<(&str, &str)>,
) -> Result<Created, AppError> {
    idempotency::postgres::create_once(pool, idempotency, async |tx| {
        let row = tx
            .query_one(
                "INSERT INTO users (name, email) VALUES ($1, $2)
                 RETURNING id, name, email, created_at",
                &[&user.name, &user.email],
            )
            .await
            .map_err(|err| unique_email(err, &user.email))?;
        serde_json::to_string(&user_from_row(&row)?).map_err(AppError::internal)
    })
    .await
}

pub(super) async fn update(pool: &Pool, id: i64, user: &NewUser) -> Result<User, AppError> {
    pool.get()
        .await?
        .query_opt(
            "UPDATE users SET name = $1, email = $2 WHERE id = $3
             RETURNING id, name, email, created_at",
            &[&user.name, &user.email, &id],
        )
        .await
        .map_err(|err| unique_email(err, &user.email))?
        .map(|row| user_from_row(&row))
        .transpose()?
        .ok_or_else(|| not_found(id))
}

pub(super) async fn delete(pool: &Pool, id: i64) -> Result<(), AppError> {
    match pool
        .get()
        .await?
        .execute("DELETE FROM users WHERE id = $1", &[&id])
        .await?
    {
        0 => Err(not_found(id)),
        _ => Ok(()),
    }
}
