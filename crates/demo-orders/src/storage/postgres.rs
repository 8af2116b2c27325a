//! The orders and order_items tables on PostgreSQL: the same answers as [`super::sqlite`]. The
//! schema is in `migrations/` (applied by refinery at start-up); seeding is done here, once, as
//! on SQLite. An order and its items are written in one transaction; reads of an order with its
//! items, or of a count with a page, run in one read-only `REPEATABLE READ` transaction so they
//! see one snapshot.

use demo_kit::AppError;
use demo_kit::idempotency::{self, Created};
use demo_kit::input::{Listing, Page};
use demo_kit::postgres::Pool;
use tokio_postgres::{GenericClient, IsolationLevel, Row, Transaction};

use super::{Item, NewOrder, Order, not_found, seed, total};

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub(super) async fn migrate_and_seed(pool: &Pool) -> Result<(), AppError> {
    pool.migrate(embedded::migrations::runner()).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if demo_kit::postgres::claim_seeding(&tx).await? {
        for order in seed() {
            insert_order(&tx, &order).await?;
        }
        tracing::info!("seeded demo orders");
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn ping(pool: &Pool) -> Result<(), AppError> {
    pool.get()
        .await?
        .query_one("SELECT EXISTS (SELECT 1 FROM orders)", &[])
        .await?;
    Ok(())
}

fn order_from_row(row: &Row) -> Result<Order, tokio_postgres::Error> {
    Ok(Order {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        items: Vec::new(),
        total_cents: row.try_get(2)?,
        status: row.try_get(3)?,
        created_at: row.try_get(4)?,
    })
}

/// Fills in the items of `orders` with one query, whatever their number (a page of orders
/// costs one round trip for its items, not one per order).
async fn load_items(client: &impl GenericClient, orders: &mut [Order]) -> Result<(), AppError> {
    let ids: Vec<i64> = orders.iter().map(|order| order.id).collect();
    let rows = client
        .query(
            "SELECT order_id, name, quantity, unit_price_cents FROM order_items
             WHERE order_id = ANY($1) ORDER BY order_id, position",
            &[&ids],
        )
        .await?;
    let by_id: std::collections::HashMap<i64, usize> = ids
        .iter()
        .enumerate()
        .map(|(index, id)| (*id, index))
        .collect();
    for row in &rows {
        let order_id: i64 = row.try_get(0)?;
        let Some(&index) = by_id.get(&order_id) else {
            continue;
        };
        orders[index].items.push(Item {
            name: row.try_get(1)?,
            quantity: row.try_get(2)?,
            unit_price_cents: row.try_get(3)?,
        });
    }
    Ok(())
}

async fn insert_items(tx: &Transaction<'_>, order_id: i64, items: &[Item]) -> Result<(), AppError> {
    let insert = tx
        .prepare(
            "INSERT INTO order_items (order_id, position, name, quantity, unit_price_cents)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    for (position, item) in (0i64..).zip(items) {
        tx.execute(
            &insert,
            &[
                &order_id,
                &position,
                &item.name,
                &item.quantity,
                &item.unit_price_cents,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Inserts the order and its items inside `tx`; returns the stored order.
async fn insert_order(tx: &Transaction<'_>, order: &NewOrder) -> Result<Order, AppError> {
    let row = tx
        .query_one(
            "INSERT INTO orders (user_id, status, total_cents) VALUES ($1, $2, $3)
             RETURNING id, user_id, total_cents, status, created_at",
            &[&order.user_id, &order.status, &total(order)?],
        )
        .await?;
    let mut stored = order_from_row(&row)?;
    insert_items(tx, stored.id, &order.items).await?;
    stored.items = order.items.clone();
    Ok(stored)
}

pub(super) async fn get(pool: &Pool, id: i64) -> Result<Order, AppError> {
    let mut client = pool.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let row = tx
        .query_opt(
            "SELECT id, user_id, total_cents, status, created_at FROM orders WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    let mut order = order_from_row(&row)?;
    load_items(&*tx, std::slice::from_mut(&mut order)).await?;
    tx.commit().await?;
    Ok(order)
}

pub(super) async fn list(
    pool: &Pool,
    page: Page,
    user_id: Option<i64>,
) -> Result<Listing<Order>, AppError> {
    let mut client = pool.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // `$1 IS NULL` makes the filter optional without building SQL by hand.
    let total = tx
        .query_one(
            "SELECT count(*) FROM orders WHERE $1::BIGINT IS NULL OR user_id = $1",
            &[&user_id],
        )
        .await?
        .try_get(0)?;
    let rows = tx
        .query(
            "SELECT id, user_id, total_cents, status, created_at FROM orders
             WHERE $1::BIGINT IS NULL OR user_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
            &[&user_id, &page.limit, &page.offset],
        )
        .await?;
    let mut items = rows
        .iter()
        .map(order_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    load_items(&*tx, &mut items).await?;
    tx.commit().await?;
    Ok(page.listing(items, total))
}

pub(super) async fn create(
    pool: &Pool,
    order: &NewOrder,
    idempotency: Option<(&str, &str)>,
) -> Result<Created, AppError> {
    idempotency::postgres::create_once(pool, idempotency, async |tx| {
        let stored = insert_order(tx, order).await?;
        serde_json::to_string(&stored).map_err(AppError::internal)
    })
    .await
}

pub(super) async fn update(pool: &Pool, id: i64, order: &NewOrder) -> Result<Order, AppError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE orders SET user_id = $1, status = $2, total_cents = $3 WHERE id = $4
             RETURNING id, user_id, total_cents, status, created_at",
            &[&order.user_id, &order.status, &total(order)?, &id],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    let mut stored = order_from_row(&row)?;
    tx.execute("DELETE FROM order_items WHERE order_id = $1", &[&id])
        .await?;
    insert_items(&tx, id, &order.items).await?;
    tx.commit().await?;
    stored.items = order.items.clone();
    Ok(stored)
}

pub(super) async fn delete(pool: &Pool, id: i64) -> Result<(), AppError> {
    // Items go with the order (ON DELETE CASCADE).
    match pool
        .get()
        .await?
        .execute("DELETE FROM orders WHERE id = $1", &[&id])
        .await?
    {
        0 => Err(not_found(id)),
        _ => Ok(()),
    }
}
