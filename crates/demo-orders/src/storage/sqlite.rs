//! The orders and order_items tables on SQLite: schema, seed data and queries. An order and its
//! items are always written in one `BEGIN IMMEDIATE` transaction, so no reader (and no crash)
//! ever sees an order without its items.

use demo_kit::AppError;
use demo_kit::idempotency::{self, Created};
use demo_kit::input::{Listing, Page};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::{Item, NewOrder, Order, not_found, seed, total};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL CHECK (user_id > 0),
    status       TEXT NOT NULL,
    total_cents  INTEGER NOT NULL CHECK (total_cents >= 0),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id);
CREATE TABLE IF NOT EXISTS order_items (
    order_id          INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position          INTEGER NOT NULL,
    name              TEXT NOT NULL CHECK (length(name) > 0),
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents  INTEGER NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, position)
);
CREATE TABLE IF NOT EXISTS meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);";

/// Creates the schema and, the first time only, the demo orders. Safe when several processes
/// run it at once (one `BEGIN IMMEDIATE` transaction; the `meta` row records that seeding
/// happened).
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
        for order in seed() {
            insert_order(&tx, &order)?;
        }
        tracing::info!("seeded demo orders");
    }
    tx.commit()?;
    Ok(())
}

/// The database answers a query.
///
/// # Errors
/// Database errors.
pub(super) fn ping(conn: &mut Connection) -> Result<(), AppError> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM orders)", [], |_| Ok(()))?;
    Ok(())
}

fn order_from_row(row: &Row<'_>) -> rusqlite::Result<Order> {
    Ok(Order {
        id: row.get(0)?,
        user_id: row.get(1)?,
        items: Vec::new(),
        total_cents: row.get(2)?,
        status: row.get(3)?,
        created_at: row.get(4)?,
    })
}

fn load_items(conn: &Connection, order: &mut Order) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, quantity, unit_price_cents FROM order_items
         WHERE order_id = ?1 ORDER BY position",
    )?;
    order.items = stmt
        .query_map(params![order.id], |row| {
            Ok(Item {
                name: row.get(0)?,
                quantity: row.get(1)?,
                unit_price_cents: row.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(())
}

fn find(conn: &Connection, id: i64) -> Result<Option<Order>, AppError> {
    let order = conn
        .query_row(
            "SELECT id, user_id, total_cents, status, created_at FROM orders WHERE id = ?1",
            params![id],
            order_from_row,
        )
        .optional()?;
    match order {
        None => Ok(None),
        Some(mut order) => {
            load_items(conn, &mut order)?;
            Ok(Some(order))
        }
    }
}

fn insert_items(tx: &Transaction<'_>, order_id: i64, items: &[Item]) -> Result<(), AppError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO order_items (order_id, position, name, quantity, unit_price_cents)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (position, item) in (0i64..).zip(items) {
        stmt.execute(params![
            order_id,
            position,
            item.name,
            item.quantity,
            item.unit_price_cents
        ])?;
    }
    Ok(())
}

/// Inserts the order and its items inside `tx`; returns the stored order.
fn insert_order(tx: &Transaction<'_>, order: &NewOrder) -> Result<Order, AppError> {
    let mut stored = tx.query_row(
        "INSERT INTO orders (user_id, status, total_cents) VALUES (?1, ?2, ?3)
         RETURNING id, user_id, total_cents, status, created_at",
        params![order.user_id, order.status, total(order)?],
        order_from_row,
    )?;
    insert_items(tx, stored.id, &order.items)?;
    stored.items = order.items.clone();
    Ok(stored)
}

/// One order with its items.
///
/// # Errors
/// 404 when there is no order `id`; database errors.
pub(super) fn get(conn: &mut Connection, id: i64) -> Result<Order, AppError> {
    // A read transaction, so the order and its items are one snapshot.
    let tx = conn.transaction()?;
    let order = find(&tx, id)?.ok_or_else(|| not_found(id))?;
    tx.commit()?;
    Ok(order)
}

/// A page of orders ordered by id, optionally only those of one user.
///
/// # Errors
/// Database errors.
pub(super) fn list(
    conn: &mut Connection,
    page: Page,
    user_id: Option<i64>,
) -> Result<Listing<Order>, AppError> {
    let tx = conn.transaction()?;
    // `?1 IS NULL` makes the filter optional without building SQL by hand.
    let total = tx.query_row(
        "SELECT count(*) FROM orders WHERE ?1 IS NULL OR user_id = ?1",
        params![user_id],
        |r| r.get(0),
    )?;
    let mut items = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, user_id, total_cents, status, created_at FROM orders
             WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
        )?;
        stmt.query_map(params![user_id, page.limit, page.offset], order_from_row)?
            .collect::<Result<Vec<_>, _>>()?
    };
    for order in &mut items {
        load_items(&tx, order)?;
    }
    tx.commit()?;
    Ok(page.listing(items, total))
}

/// Stores a new order with its items; with an idempotency key, records the answer in the same
/// transaction or returns the recorded one.
///
/// # Errors
/// 422 when the key was used for another request or the total overflows; database errors
/// (after which nothing of the order is stored).
pub(super) fn create(
    conn: &mut Connection,
    order: &NewOrder,
    idempotency: Option<(&str, &str)>,
) -> Result<Created, AppError> {
    idempotency::create_once(conn, idempotency, |tx| {
        let stored = insert_order(tx, order)?;
        serde_json::to_string(&stored).map_err(AppError::internal)
    })
}

/// Replaces an order's user, status and items (the total is recomputed).
///
/// # Errors
/// 404 when there is no order `id`; database errors (after which the order is unchanged).
pub(super) fn update(conn: &mut Connection, id: i64, order: &NewOrder) -> Result<Order, AppError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut stored = tx
        .query_row(
            "UPDATE orders SET user_id = ?1, status = ?2, total_cents = ?3 WHERE id = ?4
             RETURNING id, user_id, total_cents, status, created_at",
            params![order.user_id, order.status, total(order)?, id],
            order_from_row,
        )
        .optional()?
        .ok_or_else(|| not_found(id))?;
    tx.execute("DELETE FROM order_items WHERE order_id = ?1", params![id])?;
    insert_items(&tx, id, &order.items)?;
    tx.commit()?;
    stored.items = order.items.clone();
    Ok(stored)
}

/// Deletes an order and its items.
///
/// # Errors
/// 404 when there is no order `id`; database errors.
pub(super) fn delete(conn: &mut Connection, id: i64) -> Result<(), AppError> {
    // Items go with the order (ON DELETE CASCADE; foreign keys are on for every connection).
    match conn.execute("DELETE FROM orders WHERE id = ?1", params![id])? {
        0 => Err(not_found(id)),
        _ => Ok(()),
    }
}
