//! The outbox: events appended in the producer's own transaction, then read back in order by the
//! feed and the relay.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, SqliteConnection};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::event::{Event, now_ms};
use crate::db::Database;
use crate::on_pool;

/// How often waiting readers look at the table when nobody calls [`Outbox::notify`].
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The transaction-level advisory lock that serialises outbox appends on PostgreSQL ("soukoutb").
const APPEND_LOCK: i64 = 0x736f_756b_6f75_7462;

const INSERT: &str =
    "INSERT INTO outbox (id, type, subject, event, created_ms) VALUES ($1, $2, $3, $4, $5)";

/// Appends `event` to the outbox on SQLite, inside the caller's transaction (`&mut *tx`).
///
/// SQLite has one writer at a time, holding its lock until commit, so sequence numbers are
/// assigned in commit order and a feed reader never sees a later one before an earlier one.
pub async fn append_sqlite(conn: &mut SqliteConnection, event: &Event) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT)
        .bind(&event.id)
        .bind(&event.type_)
        .bind(&event.subject)
        .bind(event.to_json())
        .bind(now_ms())
        .execute(conn)
        .await
        .map(drop)
}

/// Appends `event` to the outbox inside a transaction of the chassis' own SQLite writer
/// ([`crate::db::inline::SqliteWriter::write`]): [`append_sqlite`] without sqlx's thread hop.
pub fn append_inline(tx: &rusqlite::Connection, event: &Event) -> Result<(), rusqlite::Error> {
    crate::db::inline::execute_numbered(
        tx,
        INSERT,
        &[
            &event.id,
            &event.type_,
            &event.subject,
            &event.to_json(),
            &now_ms(),
        ],
    )
    .map(drop)
}

/// Appends `event` to the outbox on PostgreSQL, inside the caller's transaction (`&mut *tx`).
///
/// `BIGSERIAL` numbers are handed out when rows are inserted, not when they commit: without
/// care, a reader could see 11 committed while 10 is still in flight, move its offset past 10
/// and never see it. So the append first takes a transaction-level advisory lock (held until
/// commit or rollback): appends serialise per database, each sequence number is taken only
/// after every earlier one has committed or rolled back, and readers see them in order. The
/// price is that one producer's event-emitting transactions commit one at a time — append as
/// the last statement before commit to keep that window short.
pub async fn append_postgres(conn: &mut PgConnection, event: &Event) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *conn)
        .await?;
    sqlx::query(INSERT)
        .bind(&event.id)
        .bind(&event.type_)
        .bind(&event.subject)
        .bind(event.to_json())
        .bind(now_ms())
        .execute(conn)
        .await
        .map(drop)
}

/// A producer's outbox: the feed and the relay read it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    service: String,
    news: Notify,
}

/// Where an outbox stands: what a feed page tells its readers besides the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxState {
    /// The outbox's epoch: made when its table was, so a store recreated (or swapped) under the
    /// same service serves another one.
    pub epoch: String,
    /// The last sequence number retention deleted (0: none); readers after an earlier one get
    /// 410 Gone.
    pub purged_through: i64,
    /// The last sequence number written (or `purged_through` when nothing is left).
    pub head: i64,
}

/// Rows deleted per transaction by the retention purge.
const PURGE_BATCH: i64 = 5_000;

impl Outbox {
    /// The outbox of `service` (`orders`) in its database.
    pub fn new(db: Database, service: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                service: service.to_owned(),
                news: Notify::new(),
            }),
        }
    }

    /// Deletes, every `config.retention.purge_interval_secs`, the events written more than
    /// `config.retention.events_secs` ago — with NATS, only those the relay has published — for
    /// as long as any clone of this outbox exists (the service's router holds one).
    pub fn spawn_retention(&self, config: &super::EventsConfig) {
        let Some(every) = config.retention.interval() else {
            return;
        };
        let keep = config.retention.events();
        let relayed = config.transport == super::Transport::Nats;
        let outbox = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = outbox.upgrade() else {
                    return;
                };
                let outbox = Outbox { inner };
                let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
                match outbox
                    .purge(now_ms().saturating_sub(keep_ms), relayed)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(service = %outbox.service(), purged = n, "outbox events past their retention deleted");
                    }
                    Err(err) => {
                        tracing::warn!(service = %outbox.service(), error = %crate::problem::ErrorChain(&err), "cannot purge the outbox; will retry");
                    }
                }
            }
        });
    }

    /// Deletes the events written before `before` (Unix ms) — only those published, when
    /// `relayed` — as a prefix of the sequence, and moves `purged_through` past them; how many.
    pub async fn purge(&self, before: i64, relayed: bool) -> Result<u64, sqlx::Error> {
        let mut purged = 0;
        while let Some(n) = self.purge_batch(before, relayed).await? {
            purged += n;
        }
        metrics::counter!("events_purged_total", "service" => self.inner.service.clone())
            .increment(purged);
        Ok(purged)
    }

    /// One transaction's worth of [`Outbox::purge`]: rows deleted, or `None` when there was
    /// nothing left to purge.
    async fn purge_batch(&self, before: i64, relayed: bool) -> Result<Option<u64>, sqlx::Error> {
        // The last old-enough event; with a relay, never past the first unpublished one.
        let last_sql = "SELECT MAX(seq) FROM outbox WHERE created_ms < $1";
        let unpublished_sql = "SELECT MIN(seq) FROM outbox WHERE published_ms IS NULL";
        let purged_sql = "SELECT purged_through FROM outbox_meta WHERE id = 1";
        crate::in_write_tx!(&self.inner.db, |tx| {
            let last: Option<i64> = sqlx::query_scalar(last_sql)
                .bind(before)
                .fetch_one(&mut *tx)
                .await?;
            let unpublished: Option<i64> = if relayed {
                sqlx::query_scalar(unpublished_sql)
                    .fetch_one(&mut *tx)
                    .await?
            } else {
                None
            };
            let purged: i64 = sqlx::query_scalar(purged_sql).fetch_one(&mut *tx).await?;
            let mut through = last.unwrap_or(0).min(purged + PURGE_BATCH);
            if let Some(first) = unpublished {
                through = through.min(first - 1);
            }
            if through <= purged {
                return Ok(None);
            }
            let deleted = sqlx::query("DELETE FROM outbox WHERE seq <= $1")
                .bind(through)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("UPDATE outbox_meta SET purged_through = $1 WHERE id = 1")
                .bind(through)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(deleted))
        })
    }

    /// The outbox's epoch, retention watermark and head.
    pub async fn state(&self) -> Result<OutboxState, sqlx::Error> {
        let sql = "SELECT epoch, purged_through, \
                   (SELECT MAX(seq) FROM outbox) AS head FROM outbox_meta WHERE id = 1";
        let (epoch, purged_through, head): (String, i64, Option<i64>) =
            on_pool!(&self.inner.db, |pool| sqlx::query_as(sql)
                .fetch_one(pool)
                .await?);
        Ok(OutboxState {
            epoch,
            purged_through,
            head: head.unwrap_or(purged_through).max(purged_through),
        })
    }

    /// The producing service.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Says that events were just committed: wakes long-polling feed readers and the relay at
    /// once. Optional — without it they notice within 100 ms.
    pub fn notify(&self) {
        self.inner.news.notify_waiters();
    }

    /// Up to `limit` events after position `after`, in order, each with its `seq`.
    pub async fn read_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, sqlx::Error> {
        let sql = "SELECT seq, event FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2";
        let rows: Vec<(i64, String)> = on_pool!(&self.inner.db, |pool| {
            sqlx::query_as(sql)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        decode(rows)
    }

    /// Like [`Outbox::read_after`], but when there is nothing yet, waits up to `wait` for events.
    pub(crate) async fn read_after_waiting(
        &self,
        after: i64,
        limit: u32,
        wait: Duration,
    ) -> Result<Vec<Event>, sqlx::Error> {
        let deadline = Instant::now() + wait;
        self.wait_for(deadline, || self.read_after(after, limit))
            .await
    }

    /// Up to `limit` events the relay has not published yet, in order.
    pub(crate) async fn unpublished(&self, limit: u32) -> Result<Vec<Event>, sqlx::Error> {
        let sql = "SELECT seq, event FROM outbox WHERE published_ms IS NULL ORDER BY seq LIMIT $1";
        let rows: Vec<(i64, String)> = on_pool!(&self.inner.db, |pool| {
            sqlx::query_as(sql)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        decode(rows)
    }

    /// Records that the event at `seq` is safely in JetStream.
    pub(crate) async fn mark_published(&self, seq: i64) -> Result<(), sqlx::Error> {
        let sql = "UPDATE outbox SET published_ms = $1 WHERE seq = $2";
        let _turn = self.inner.db.write_turn().await?;
        on_pool!(&self.inner.db, |pool| {
            sqlx::query(sql)
                .bind(now_ms())
                .bind(seq)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Runs `read` until it finds events or `deadline` passes, sleeping between tries until
    /// [`Outbox::notify`] is called or the poll interval passes.
    pub(crate) async fn wait_for<F, Fut>(
        &self,
        deadline: Instant,
        mut read: F,
    ) -> Result<Vec<Event>, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Vec<Event>, sqlx::Error>>,
    {
        loop {
            // Registered before reading, so a notification between the read and the wait is
            // not lost.
            let news = self.inner.news.notified();
            tokio::pin!(news);
            news.as_mut().enable();
            let events = read().await?;
            let now = Instant::now();
            if !events.is_empty() || now >= deadline {
                return Ok(events);
            }
            tokio::select! {
                () = news => {}
                () = tokio::time::sleep(POLL_INTERVAL.min(deadline - now)) => {}
            }
        }
    }
}

fn decode(rows: Vec<(i64, String)>) -> Result<Vec<Event>, sqlx::Error> {
    rows.into_iter()
        .map(|(seq, text)| {
            Event::from_json(&text, Some(seq)).map_err(|e| sqlx::Error::ColumnDecode {
                index: "event".into(),
                source: Box::new(e),
            })
        })
        .collect()
}
