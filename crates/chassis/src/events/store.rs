//! A consumer's tables: the inbox of handled events, its offset, its dead letters.

use sqlx::{PgConnection, SqliteConnection};

use super::dead_letters::DeadLetter;
use super::event::{Event, now_ms};
use crate::db::Database;
use crate::on_pool;

const RECORD: &str = "INSERT INTO event_inbox (consumer, event_id, handled_ms) VALUES ($1, $2, $3) \
                      ON CONFLICT (consumer, event_id) DO NOTHING";

/// Offsets only move forward, even when two instances of a consumer save theirs out of order.
const ADVANCE: &str = "INSERT INTO event_offsets (consumer, position) VALUES ($1, $2) \
                       ON CONFLICT (consumer) DO UPDATE SET position = excluded.position \
                       WHERE CAST(event_offsets.position AS BIGINT) < CAST(excluded.position AS BIGINT)";

/// Records that `consumer` handled `event_id`, inside the handler's own transaction on SQLite:
/// `true` the first time, `false` when it was handled already (then make no effect, and return
/// `Ok`). Make it the transaction's first statement: it takes SQLite's write lock, so a second
/// instance waits here instead of failing later.
pub async fn inbox_record_sqlite(
    conn: &mut SqliteConnection,
    consumer: &str,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(RECORD)
        .bind(consumer)
        .bind(event_id)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// [`inbox_record_sqlite`] on PostgreSQL: a concurrent transaction recording the same event
/// waits for this one to commit (then gets `false`) or roll back (then gets `true`).
pub async fn inbox_record_postgres(
    conn: &mut PgConnection,
    consumer: &str,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(RECORD)
        .bind(consumer)
        .bind(event_id)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// How far a consumer has read, under the key of its transport: the consumer's name for the
/// feed (outbox sequence numbers), `<name>@nats` for NATS (stream sequence numbers, kept for
/// operators: JetStream's durable consumer is what resumes). The two never mix, so switching
/// transports re-reads from the feed offset, and the inbox skips what was handled.
#[derive(Debug, Clone, Copy)]
pub(super) struct Offset<'a> {
    pub(super) key: &'a str,
    pub(super) position: i64,
}

/// Whether `consumer`'s inbox has `event_id`.
pub(super) async fn handled(
    db: &Database,
    consumer: &str,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    let sql = "SELECT 1 FROM event_inbox WHERE consumer = $1 AND event_id = $2";
    let found: Option<i32> = on_pool!(db, |pool| sqlx::query_scalar(sql)
        .bind(consumer)
        .bind(event_id)
        .fetch_optional(pool)
        .await?);
    Ok(found.is_some())
}

/// The position `consumer` has reached, if it saved one.
pub(super) async fn offset(db: &Database, consumer: &str) -> Result<Option<i64>, sqlx::Error> {
    Ok(cursor(db, consumer).await?.0)
}

/// The position `consumer` has reached and the producer's epoch it counts in, if saved.
pub(super) async fn cursor(
    db: &Database,
    consumer: &str,
) -> Result<(Option<i64>, Option<String>), sqlx::Error> {
    let sql = "SELECT position, epoch FROM event_offsets WHERE consumer = $1";
    let row: Option<(String, Option<String>)> = on_pool!(db, |pool| sqlx::query_as(sql)
        .bind(consumer)
        .fetch_optional(pool)
        .await?);
    Ok(match row {
        Some((position, epoch)) => (position.parse().ok(), epoch),
        None => (None, None),
    })
}

/// Saves `consumer`'s position and the producer's epoch it counts in, whatever was saved before
/// (moving back too: a producer recreated or restored).
pub(super) async fn reset_cursor(
    db: &Database,
    consumer: &str,
    position: i64,
    epoch: &str,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO event_offsets (consumer, position, epoch) VALUES ($1, $2, $3) \
               ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, epoch = excluded.epoch";
    let _turn = db.write_turn().await?;
    on_pool!(db, |pool| sqlx::query(sql)
        .bind(consumer)
        .bind(position.to_string())
        .bind(epoch)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// Records the producer's epoch `consumer`'s position counts in (first seen), keeping the
/// position.
pub(super) async fn adopt_epoch(
    db: &Database,
    consumer: &str,
    epoch: &str,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO event_offsets (consumer, position, epoch) VALUES ($1, '0', $2) \
               ON CONFLICT (consumer) DO UPDATE SET epoch = excluded.epoch";
    let _turn = db.write_turn().await?;
    on_pool!(db, |pool| sqlx::query(sql)
        .bind(consumer)
        .bind(epoch)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// Forgets `consumer`'s inbox entries handled before `before` and its dead letters parked before
/// `letters_before` (Unix ms) that nobody asked to replay; how many rows went.
pub(super) async fn purge(
    db: &Database,
    consumer: &str,
    before: i64,
    letters_before: i64,
) -> Result<u64, sqlx::Error> {
    let inbox = "DELETE FROM event_inbox WHERE consumer = $1 AND handled_ms < $2";
    let letters = "DELETE FROM event_dead_letters WHERE consumer = $1 AND parked_ms < $2 \
                   AND replayed_ms IS NULL";
    let _turn = db.write_turn().await?;
    let deleted = on_pool!(db, |pool| {
        let a = sqlx::query(inbox)
            .bind(consumer)
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected();
        let b = sqlx::query(letters)
            .bind(consumer)
            .bind(letters_before)
            .execute(pool)
            .await?
            .rows_affected();
        a + b
    });
    Ok(deleted)
}

/// Moves an offset forward (if given and further on).
pub(super) async fn advance(db: &Database, offset: Option<Offset<'_>>) -> Result<(), sqlx::Error> {
    let Some(offset) = offset else {
        return Ok(());
    };
    let _turn = db.write_turn().await?;
    on_pool!(db, |pool| sqlx::query(ADVANCE)
        .bind(offset.key)
        .bind(offset.position.to_string())
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// Records a handled event in the inbox (a no-op when the handler did) and moves the offset,
/// in one transaction.
pub(super) async fn record_handled(
    db: &Database,
    consumer: &str,
    event_id: &str,
    offset: Option<Offset<'_>>,
) -> Result<(), sqlx::Error> {
    crate::in_write_tx!(db, |tx| {
        sqlx::query(RECORD)
            .bind(consumer)
            .bind(event_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        if let Some(offset) = offset {
            sqlx::query(ADVANCE)
                .bind(offset.key)
                .bind(offset.position.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?
    });
    Ok(())
}

/// Parks `event` as a dead letter of `consumer` and moves the offset past it, in one transaction.
pub(super) async fn park(
    db: &Database,
    consumer: &str,
    event: &Event,
    error: &str,
    attempts: u32,
    offset: Option<Offset<'_>>,
) -> Result<(), sqlx::Error> {
    let insert = "INSERT INTO event_dead_letters \
                  (id, consumer, event_id, event, error, attempts, parked_ms) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let id = uuid::Uuid::now_v7().to_string();
    crate::in_write_tx!(db, |tx| {
        sqlx::query(insert)
            .bind(&id)
            .bind(consumer)
            .bind(&event.id)
            .bind(event.to_json())
            .bind(error)
            .bind(i64::from(attempts))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        if let Some(offset) = offset {
            sqlx::query(ADVANCE)
                .bind(offset.key)
                .bind(offset.position.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?
    });
    Ok(())
}

/// `consumer`'s dead letters that an operator asked to replay, oldest first.
pub(super) async fn pending_replays(
    db: &Database,
    consumer: &str,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    super::dead_letters::select(
        db,
        "WHERE consumer = $1 AND replayed_ms IS NOT NULL ORDER BY id LIMIT 100",
        &[consumer],
    )
    .await
}

/// A replayed dead letter was handled: it goes into the inbox and leaves the dead letters.
pub(super) async fn replay_succeeded(
    db: &Database,
    letter: &DeadLetter,
) -> Result<(), sqlx::Error> {
    crate::in_write_tx!(db, |tx| {
        sqlx::query(RECORD)
            .bind(&letter.consumer)
            .bind(&letter.event.id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM event_dead_letters WHERE id = $1")
            .bind(&letter.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?
    });
    tracing::info!(consumer = %letter.consumer, dead_letter = %letter.id, "replayed dead letter handled");
    Ok(())
}

/// A replayed dead letter failed again: parked anew with the latest error.
pub(super) async fn repark(
    db: &Database,
    letter: &DeadLetter,
    error: &str,
    attempts: u32,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE event_dead_letters SET replayed_ms = NULL, error = $1, \
               attempts = attempts + $2, parked_ms = $3 WHERE id = $4";
    let _turn = db.write_turn().await?;
    on_pool!(db, |pool| sqlx::query(sql)
        .bind(error)
        .bind(i64::from(attempts))
        .bind(now_ms())
        .bind(&letter.id)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}
