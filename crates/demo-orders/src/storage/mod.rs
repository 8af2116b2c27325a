//! The orders: what is stored, and the one place that picks the database. Each function here
//! runs the SQLite version (`sqlite.rs`, blocking, on the pool's threads) or the PostgreSQL one
//! (`postgres.rs`, async), with the same results and the same errors, so handlers do not care
//! which database they use. Either way an order and its items are written in one transaction.

use demo_kit::AppError;
use demo_kit::database::Database;
use demo_kit::idempotency::Created;
use demo_kit::input::{Listing, Page};
use serde::Serialize;

mod postgres;
mod sqlite;

/// The statuses an order can have.
pub const STATUSES: [&str; 5] = ["pending", "paid", "shipped", "delivered", "cancelled"];

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// What was ordered.
    pub name: String,
    /// How many, at least 1.
    pub quantity: i64,
    /// Price of one, in cents, at least 0.
    pub unit_price_cents: i64,
}

/// A stored order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    /// Id, assigned by the database, never reused.
    pub id: i64,
    /// The user who ordered (a user id of the users service).
    pub user_id: i64,
    /// The lines, in the order given.
    pub items: Vec<Item>,
    /// Sum of quantity × unit price over the items, computed here, never taken from the client.
    pub total_cents: i64,
    /// One of [`STATUSES`].
    pub status: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
}

/// The fields a client sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The user who orders.
    pub user_id: i64,
    /// The lines (at least one).
    pub items: Vec<Item>,
    /// One of [`STATUSES`].
    pub status: String,
}

impl NewOrder {
    /// The order total, or `None` if it would overflow.
    pub fn total_cents(&self) -> Option<i64> {
        self.items.iter().try_fold(0i64, |sum, item| {
            item.quantity
                .checked_mul(item.unit_price_cents)
                .and_then(|line| sum.checked_add(line))
        })
    }
}

/// The demo orders present on a fresh start (ids 1 and 2, for demo users 1 and 2).
fn seed() -> [NewOrder; 2] {
    let item = |name: &str, quantity, unit_price_cents| Item {
        name: name.to_owned(),
        quantity,
        unit_price_cents,
    };
    [
        NewOrder {
            user_id: 1,
            items: vec![
                item("Analytical Engine punch cards", 3, 1_250),
                item("Brass gear set", 1, 4_999),
            ],
            status: "paid".to_owned(),
        },
        NewOrder {
            user_id: 2,
            items: vec![item("Enigma rotor", 2, 7_500)],
            status: "pending".to_owned(),
        },
    ]
}

fn not_found(id: i64) -> AppError {
    AppError::not_found(format!("order {id} not found"))
}

fn total(order: &NewOrder) -> Result<i64, AppError> {
    order
        .total_cents()
        .ok_or_else(|| AppError::invalid_field("items", "the order total is too large"))
}

/// Creates or updates the schema and, the first time only, the demo orders. Safe when several
/// processes run it at once.
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

/// One order with its items, read from one snapshot.
///
/// # Errors
/// 404 when there is no order `id`; database errors.
pub async fn get(db: &Database, id: i64) -> Result<Order, AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(move |c| sqlite::get(c, id)).await,
        Database::Postgres(pool) => postgres::get(pool, id).await,
    }
}

/// A page of orders ordered by id, optionally only those of one user; the count and the page
/// are read from one snapshot.
///
/// # Errors
/// Database errors.
pub async fn list(
    db: &Database,
    page: Page,
    user_id: Option<i64>,
) -> Result<Listing<Order>, AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(move |c| sqlite::list(c, page, user_id)).await,
        Database::Postgres(pool) => postgres::list(pool, page, user_id).await,
    }
}

/// Stores a new order with its items. With `idempotency` (the key and the request's
/// fingerprint), the answer is recorded in the same transaction, or the one recorded before is
/// returned.
///
/// # Errors
/// 422 when the key was used for another request or the total overflows; database errors
/// (after which nothing of the order is stored).
pub async fn create(
    db: &Database,
    order: NewOrder,
    idempotency: Option<(String, String)>,
) -> Result<Created, AppError> {
    match db {
        Database::Sqlite(pool) => {
            pool.run(move |c| {
                let idem = idempotency.as_ref().map(|(k, f)| (k.as_str(), f.as_str()));
                sqlite::create(c, &order, idem)
            })
            .await
        }
        Database::Postgres(pool) => {
            let idem = idempotency.as_ref().map(|(k, f)| (k.as_str(), f.as_str()));
            postgres::create(pool, &order, idem).await
        }
    }
}

/// Replaces an order's user, status and items (the total is recomputed).
///
/// # Errors
/// 404 when there is no order `id`; database errors (after which the order is unchanged).
pub async fn update(db: &Database, id: i64, order: NewOrder) -> Result<Order, AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(move |c| sqlite::update(c, id, &order)).await,
        Database::Postgres(pool) => postgres::update(pool, id, &order).await,
    }
}

/// Deletes an order and its items.
///
/// # Errors
/// 404 when there is no order `id`; database errors.
pub async fn delete(db: &Database, id: i64) -> Result<(), AppError> {
    match db {
        Database::Sqlite(pool) => pool.run(move |c| sqlite::delete(c, id)).await,
        Database::Postgres(pool) => postgres::delete(pool, id).await,
    }
}
