//! The checkout's stock changes on SQLite's writer ([`souk_chassis::db::inline::SqliteWriter`]):
//! the same SQL as the pool's path (`super::sql`), run on the calling thread inside the writer's
//! transaction, with no hop to a pool connection's worker thread per statement. A reservation
//! is a handful of statements (its row, a `TAKE` per line, its lines), a commit as many again;
//! through the pool each was a round trip to another thread, with the process's turn on the file
//! held across all of them.

use rusqlite::Connection;
use souk_chassis::db::inline::{bind_numbered, execute_numbered};
use uuid::Uuid;

use super::{StoreError, parse_id, reservation_from, sql};
use crate::domain::{Line, Reservation, ReservationState, Timestamp};

/// Order `key`'s reservation lines, in product-id order.
pub(super) fn lines(tx: &Connection, key: &str) -> Result<Vec<Line>, StoreError> {
    let mut statement = tx.prepare_cached(sql::LINES)?;
    bind_numbered(&mut statement, &[&key])?;
    let mut rows = statement.raw_query();
    let mut lines = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        lines.push(Line {
            product_id: parse_id(&id)?,
            quantity: row.get(1)?,
        });
    }
    Ok(lines)
}

/// Order `order`'s reservation and its lines: `fetch_reservation!` on the writer.
pub(super) fn reservation(tx: &Connection, order: Uuid) -> Result<Option<Reservation>, StoreError> {
    let key = order.to_string();
    let found: Option<(String, Option<i64>)> = {
        let mut statement = tx.prepare_cached(sql::RESERVATION)?;
        bind_numbered(&mut statement, &[&key])?;
        let mut rows = statement.raw_query();
        rows.next()?
            .map(|row| Ok::<_, rusqlite::Error>((row.get(0)?, row.get(1)?)))
            .transpose()?
    };
    let Some((state, expires_at)) = found else {
        return Ok(None);
    };
    let lines = lines(tx, &key)?;
    reservation_from(order, state, expires_at, lines).map(Some)
}

/// `finish_hold!` on the writer: moves order `order`'s hold to `to` if `transition` (bound as
/// order, state, now) matches it, and applies `stock` (bound as product, quantity, now) to each
/// of its lines. Whether the hold moved.
pub(super) fn finish_hold(
    tx: &Connection,
    order: Uuid,
    transition: &str,
    to: ReservationState,
    stock: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let key = order.to_string();
    let now = now.millis();
    let moved = execute_numbered(tx, transition, &[&key, &to.as_str(), &now])?;
    if moved != 1 {
        return Ok(false);
    }
    for line in lines(tx, &key)? {
        let changed = execute_numbered(
            tx,
            stock,
            &[&line.product_id.to_string(), &line.quantity, &now],
        )?;
        if changed != 1 {
            return Err(StoreError::Corrupt {
                column: "reservation_lines.product_id",
                reason: format!("no stock row for {}", line.product_id),
            });
        }
    }
    Ok(true)
}
