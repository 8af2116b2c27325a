//! The PostgreSQL side of `Idempotency-Key`: the same guarantees as the SQLite side, from other
//! means. SQLite's `BEGIN IMMEDIATE` makes the whole database one writer at a time; Postgres lets
//! writers run side by side, so a create first takes a transaction-scoped advisory lock on the
//! key. Two requests with the same key, on any replica, then run one after the other: the second
//! finds the first one's committed answer and replays it. Different keys never wait for each
//! other (except on a 64-bit hash collision, which only costs a wait).

use http::StatusCode;
use tokio_postgres::Transaction;

use super::{Created, StoredResponse, replay_or_refuse};
use crate::error::AppError;
use crate::postgres::Pool;

/// Takes the key's lock for the rest of `tx`, then looks the key up. `fingerprint` identifies
/// the request (method, path and canonical body).
///
/// # Errors
/// 422 `idempotency_key_reused` when the key was used for a different request; database errors.
pub async fn lookup(
    tx: &Transaction<'_>,
    key: &str,
    fingerprint: &str,
) -> Result<Option<StoredResponse>, AppError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&key],
    )
    .await?;
    let found = tx
        .query_opt(
            "SELECT request, status, response FROM idempotency_keys WHERE key = $1",
            &[&key],
        )
        .await?
        .map(|row| -> Result<_, AppError> {
            let status: i32 = row.try_get(1)?;
            let status = u16::try_from(status).map_err(AppError::internal)?;
            Ok((row.try_get(0)?, status, row.try_get(2)?))
        })
        .transpose()?;
    replay_or_refuse(key, fingerprint, found)
}

/// Records the answer for `key`, inside the same transaction as the record it created.
///
/// # Errors
/// Database errors.
pub async fn store(
    tx: &Transaction<'_>,
    key: &str,
    fingerprint: &str,
    status: StatusCode,
    body: &str,
) -> Result<(), AppError> {
    tx.execute(
        "INSERT INTO idempotency_keys (key, request, status, response) VALUES ($1, $2, $3, $4)",
        &[&key, &fingerprint, &i32::from(status.as_u16()), &body],
    )
    .await?;
    Ok(())
}

/// Creates a record at most once per idempotency key, like
/// [`create_once`](super::create_once) for SQLite: in one transaction, a key seen before with
/// the same request replays the stored answer; otherwise `insert` writes the record and returns
/// its JSON, which is stored with the key before the commit.
///
/// # Errors
/// A key reused for another request (422); whatever `insert` fails with; database errors. On
/// any error nothing is written (the transaction is rolled back when dropped).
pub async fn create_once<F>(
    pool: &Pool,
    idempotency: Option<(&str, &str)>,
    insert: F,
) -> Result<Created, AppError>
where
    F: AsyncFnOnce(&Transaction<'_>) -> Result<String, AppError>,
{
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if let Some((key, fingerprint)) = idempotency {
        if let Some(stored) = lookup(&tx, key, fingerprint).await? {
            return Ok(Created::Replay(stored));
        }
    }
    let body = insert(&tx).await?;
    if let Some((key, fingerprint)) = idempotency {
        store(&tx, key, fingerprint, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await?;
    Ok(Created::New(body))
}
