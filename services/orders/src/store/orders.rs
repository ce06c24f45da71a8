//! Orders and their lines: placed in one transaction with their saga, their `order_placed` event
//! and the idempotency key's answer; read one at a time or a page at a time.

use std::collections::HashMap;

use souk_chassis::db::inline::execute_numbered;
use souk_chassis::events::{Event, append_inline};
use souk_chassis::on_pool;
use uuid::Uuid;

use super::keys::{FINISH, KeyDone, finish_params, finish_query};
use super::{Store, StoreError, in_write_tx, uuid};
use crate::domain::{
    CancelReason, Currency, Money, Order, OrderLine, OrderStatus, ShippingAddress, Timestamp,
};

const ORDER_COLUMNS: &str = "id, user_id, status, cancel_reason, total_amount, currency, \
    payment_method_id, shipping_address, created_at, updated_at";
type OrderRow = (
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
    String,
    String,
    i64,
    i64,
);

const LINE_COLUMNS: &str =
    "order_id, line_no, product_id, sku, name, quantity, unit_amount, line_amount";
type LineRow = (String, i64, String, String, String, i64, i64, i64);

const INSERT_ORDER: &str = "INSERT INTO orders (id, user_id, status, cancel_reason, \
    total_amount, currency, payment_method_id, shipping_address, created_at, updated_at) \
    VALUES ($1, $2, 'pending', NULL, $3, $4, $5, $6, $7, $7)";
const INSERT_LINE: &str = "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, \
    quantity, unit_amount, line_amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const INSERT_SAGA: &str = "INSERT INTO sagas (order_id, step, attempts, deadline_at, \
    next_attempt_at, updated_at, traceparent) VALUES ($1, 'reserve', 0, $2, $3, $3, $4)";

/// An order to place, with its saga's deadline.
#[derive(Debug)]
pub struct NewOrder<'a> {
    /// The order, `pending`.
    pub order: &'a Order,
    /// When reserving and charging give up.
    pub deadline_at: Timestamp,
    /// Its `order_placed` event.
    pub event: &'a Event,
    /// The idempotency key to mark done with the answer, if the request had one.
    pub key: Option<&'a KeyDone>,
}

/// What placing came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// The order, its saga and its event are stored (and the key answered).
    Stored,
    /// The idempotency key was taken over by another attempt while this one ran: nothing stored.
    KeyLost,
}

impl Store {
    /// Stores a new order, its lines, its saga (at `reserve`, runnable now), its `order_placed`
    /// event and — if the request had one — its idempotency key's answer, all or nothing.
    pub async fn place(&self, new: NewOrder<'_>) -> Result<Placed, StoreError> {
        let order = new.order;
        let address = serde_json::to_string(&order.shipping_address)
            .map_err(|e| StoreError::corrupt("orders.shipping_address", e.to_string()))?;
        let created = order.created_at.millis();
        let id = order.id.to_string();
        let payment_method = order.payment_method_id.to_string();
        let currency = order.total.currency.as_str();
        if let Some(writer) = &self.writer {
            return writer
                .write(|tx| {
                    if let Some(key) = new.key
                        && execute_numbered(tx, FINISH, &finish_params(key))? != 1
                    {
                        return Ok(Placed::KeyLost);
                    }
                    execute_numbered(
                        tx,
                        INSERT_ORDER,
                        &[
                            &id,
                            &order.user_id,
                            &order.total.amount,
                            &currency,
                            &payment_method,
                            &address,
                            &created,
                        ],
                    )?;
                    for (line_no, line) in (0_i64..).zip(&order.lines) {
                        execute_numbered(
                            tx,
                            INSERT_LINE,
                            &[
                                &id,
                                &line_no,
                                &line.product_id.to_string(),
                                &line.sku,
                                &line.name,
                                &line.quantity,
                                &line.unit_price.amount,
                                &line.line_total.amount,
                            ],
                        )?;
                    }
                    execute_numbered(
                        tx,
                        INSERT_SAGA,
                        &[
                            &id,
                            &new.deadline_at.millis(),
                            &created,
                            &new.event.traceparent,
                        ],
                    )?;
                    append_inline(tx, new.event)?;
                    Ok::<_, StoreError>(Placed::Stored)
                })
                .await;
        }
        in_write_tx!(&self.db, |tx, append| {
            if let Some(key) = new.key {
                let done = finish_query!(key).execute(&mut *tx).await?;
                if done.rows_affected() != 1 {
                    return Ok(Placed::KeyLost);
                }
            }
            sqlx::query(INSERT_ORDER)
                .bind(&id)
                .bind(&order.user_id)
                .bind(order.total.amount)
                .bind(currency)
                .bind(&payment_method)
                .bind(&address)
                .bind(created)
                .execute(&mut *tx)
                .await?;
            for (line_no, line) in (0_i64..).zip(&order.lines) {
                sqlx::query(INSERT_LINE)
                    .bind(&id)
                    .bind(line_no)
                    .bind(line.product_id.to_string())
                    .bind(&line.sku)
                    .bind(&line.name)
                    .bind(line.quantity)
                    .bind(line.unit_price.amount)
                    .bind(line.line_total.amount)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(INSERT_SAGA)
                .bind(&id)
                .bind(new.deadline_at.millis())
                .bind(created)
                .bind(&new.event.traceparent)
                .execute(&mut *tx)
                .await?;
            append(&mut tx, new.event).await?;
            tx.commit().await?;
            Ok(Placed::Stored)
        })
    }

    /// Order `id`, whoever owns it.
    pub async fn order(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        let order_sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let lines_sql =
            format!("SELECT {LINE_COLUMNS} FROM order_lines WHERE order_id = $1 ORDER BY line_no");
        let (row, lines): (Option<OrderRow>, Vec<LineRow>) = on_pool!(&self.db, |pool| {
            let row = sqlx::query_as(sqlx::AssertSqlSafe(order_sql))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?;
            let lines = sqlx::query_as(sqlx::AssertSqlSafe(lines_sql))
                .bind(id.to_string())
                .fetch_all(pool)
                .await?;
            (row, lines)
        });
        row.map(|row| order_from_rows(row, lines)).transpose()
    }

    /// Up to `limit` of `user_id`'s orders placed before order `before` (all, without it),
    /// newest first.
    pub async fn orders_of(
        &self,
        user_id: &str,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        // UUIDv7 text sorts by creation time, so the id is the keyset.
        let page = match before {
            Some(_) => {
                "SELECT id FROM orders WHERE user_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2"
            }
            None => "SELECT id FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        };
        let orders_sql =
            format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id IN ({page}) ORDER BY id DESC");
        let lines_sql = format!(
            "SELECT {LINE_COLUMNS} FROM order_lines WHERE order_id IN ({page}) \
             ORDER BY order_id, line_no"
        );
        let before = before.map(|id| id.to_string());
        let (rows, lines): (Vec<OrderRow>, Vec<LineRow>) = on_pool!(&self.db, |pool| {
            let mut rows = sqlx::query_as(sqlx::AssertSqlSafe(orders_sql))
                .bind(user_id)
                .bind(i64::from(limit));
            let mut lines = sqlx::query_as(sqlx::AssertSqlSafe(lines_sql))
                .bind(user_id)
                .bind(i64::from(limit));
            if let Some(before) = &before {
                rows = rows.bind(before.clone());
                lines = lines.bind(before.clone());
            }
            (rows.fetch_all(pool).await?, lines.fetch_all(pool).await?)
        });
        let mut lines_of: HashMap<String, Vec<LineRow>> = HashMap::new();
        for line in lines {
            lines_of.entry(line.0.clone()).or_default().push(line);
        }
        rows.into_iter()
            .map(|row| {
                let lines = lines_of.remove(&row.0).unwrap_or_default();
                order_from_rows(row, lines)
            })
            .collect()
    }
}

fn order_from_rows(row: OrderRow, lines: Vec<LineRow>) -> Result<Order, StoreError> {
    let (id, user_id, status, reason, total, currency, method, address, created, updated) = row;
    let currency = Currency::parse(&currency).map_err(|e| StoreError::corrupt("currency", e))?;
    let money = |amount: i64, column: &'static str| {
        Money::new(amount, currency.clone())
            .ok_or_else(|| StoreError::corrupt(column, format!("{amount} is negative")))
    };
    let lines = lines
        .into_iter()
        .map(
            |(_, _, product_id, sku, name, quantity, unit, line_total)| {
                Ok(OrderLine {
                    product_id: uuid("order_lines.product_id", &product_id)?,
                    sku,
                    name,
                    quantity,
                    unit_price: money(unit, "order_lines.unit_amount")?,
                    line_total: money(line_total, "order_lines.line_amount")?,
                })
            },
        )
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Order {
        id: uuid("orders.id", &id)?,
        user_id,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("orders.status", status))?,
        cancel_reason: reason
            .map(|r| CancelReason::parse(&r).ok_or_else(|| StoreError::corrupt("cancel_reason", r)))
            .transpose()?,
        lines,
        total: money(total, "orders.total_amount")?,
        shipping_address: serde_json::from_str::<ShippingAddress>(&address)
            .map_err(|e| StoreError::corrupt("orders.shipping_address", e.to_string()))?,
        payment_method_id: uuid("orders.payment_method_id", &method)?,
        created_at: Timestamp::from_millis(created),
        updated_at: Timestamp::from_millis(updated),
    })
}
