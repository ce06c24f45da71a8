//! Fixtures: a migrated database, appending, a scripted recording handler, waiting.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use souk_chassis::Database;
use souk_chassis::db::Migrations;
use souk_chassis::events::{self, Event, HandleError, Handler};
use souk_chassis::test_util::{Backend, TestDatabase, init_test_logging};

const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        events::OUTBOX_MIGRATION_SQLITE,
        events::INBOX_MIGRATION_SQLITE,
        events::OUTBOX_META_MIGRATION_SQLITE,
        events::INBOX_RETENTION_MIGRATION_SQLITE,
        (
            9_100_000,
            "effects",
            "CREATE TABLE effects (n INTEGER PRIMARY KEY AUTOINCREMENT, consumer TEXT NOT NULL, event_id TEXT NOT NULL)",
        ),
    ],
    postgres: &[
        events::OUTBOX_MIGRATION_POSTGRES,
        events::INBOX_MIGRATION_POSTGRES,
        events::OUTBOX_META_MIGRATION_POSTGRES,
        events::INBOX_RETENTION_MIGRATION_POSTGRES,
        (
            9_100_000,
            "effects",
            "CREATE TABLE effects (n BIGSERIAL PRIMARY KEY, consumer TEXT NOT NULL, event_id TEXT NOT NULL)",
        ),
    ],
};

/// A service's database with the outbox, the inbox and an `effects` table handlers write to.
pub(crate) struct Fixture {
    pub(crate) db: Database,
    _database: TestDatabase,
}

pub(crate) async fn fixture(backend: Backend) -> Option<Fixture> {
    init_test_logging();
    let database = TestDatabase::create(backend).await?;
    let db = Database::connect(&database.config).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    Some(Fixture {
        db,
        _database: database,
    })
}

/// `prefix` and a random suffix: streams and consumers on the shared NATS server never meet.
pub(crate) fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{prefix}{}", &id[24..])
}

/// Event number `n` of `service`, with subject `s<n>`.
pub(crate) fn event(service: &str, n: usize) -> Event {
    Event::new(
        service,
        &format!("souk.{service}.thing_happened.v1"),
        format!("s{n}"),
        serde_json::json!({ "n": n }),
    )
}

/// Appends `event` in a transaction of its own.
pub(crate) async fn append(db: &Database, event: &Event) {
    match db {
        Database::Sqlite(pool) => {
            let mut tx = pool.begin().await.unwrap();
            events::append_sqlite(&mut tx, event).await.unwrap();
            tx.commit().await.unwrap();
        }
        Database::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            events::append_postgres(&mut tx, event).await.unwrap();
            tx.commit().await.unwrap();
        }
    }
}

/// Runs `sql` (no parameters) on either engine.
pub(crate) async fn execute(db: &Database, sql: &'static str) {
    match db {
        Database::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        Database::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
    .unwrap();
}

/// The ids of the events `consumer`'s handler made an effect for, in the order it made them.
pub(crate) async fn effects(db: &Database, consumer: &str) -> Vec<String> {
    let sql = "SELECT event_id FROM effects WHERE consumer = $1 ORDER BY n";
    match db {
        Database::Sqlite(pool) => sqlx::query_scalar(sql).bind(consumer).fetch_all(pool).await,
        Database::Postgres(pool) => sqlx::query_scalar(sql).bind(consumer).fetch_all(pool).await,
    }
    .unwrap()
}

/// Waits until `check` holds, failing the test with `what` after `timeout`.
pub(crate) async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < timeout,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the recording handler does, by event subject.
#[derive(Debug, Default)]
pub(crate) struct Script {
    /// Fail with `Retry` this many more times.
    pub(crate) retry: HashMap<String, u32>,
    /// Fail with `Poison` while listed.
    pub(crate) poison: HashSet<String>,
    /// Fail with `Unavailable` this many more times.
    pub(crate) unavailable: HashMap<String, u32>,
    /// How often the handler was called.
    pub(crate) calls: HashMap<String, u32>,
    /// Sleep this long before working (to make instances overlap).
    pub(crate) slow: Duration,
}

/// A handler that records each event in `effects` and the inbox, in one transaction, as a
/// service's handler would; its failures are scripted.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    pub(crate) consumer: String,
    pub(crate) db: Database,
    pub(crate) script: Arc<Mutex<Script>>,
}

impl Recorder {
    pub(crate) fn new(consumer: &str, db: &Database) -> Self {
        Self {
            consumer: consumer.to_owned(),
            db: db.clone(),
            script: Arc::default(),
        }
    }

    pub(crate) fn calls(&self) -> u32 {
        self.script.lock().unwrap().calls.values().sum()
    }

    pub(crate) fn calls_of(&self, subject: &str) -> u32 {
        let script = self.script.lock().unwrap();
        script.calls.get(subject).copied().unwrap_or_default()
    }
}

impl Handler for Recorder {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        let slow = {
            let mut script = self.script.lock().unwrap();
            *script.calls.entry(event.subject.clone()).or_default() += 1;
            if script.poison.contains(&event.subject) {
                return Err(HandleError::Poison("scripted poison".into()));
            }
            if let Some(left) = script.retry.get_mut(&event.subject).filter(|n| **n > 0) {
                *left -= 1;
                return Err(HandleError::Retry("scripted outage".into()));
            }
            if let Some(left) = script
                .unavailable
                .get_mut(&event.subject)
                .filter(|n| **n > 0)
            {
                *left -= 1;
                return Err(HandleError::Unavailable("scripted store outage".into()));
            }
            script.slow
        };
        tokio::time::sleep(slow).await;
        let insert = "INSERT INTO effects (consumer, event_id) VALUES ($1, $2)";
        match &self.db {
            Database::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                if !events::inbox_record_sqlite(&mut tx, &self.consumer, &event.id).await? {
                    return Ok(());
                }
                sqlx::query(insert)
                    .bind(&self.consumer)
                    .bind(&event.id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                if !events::inbox_record_postgres(&mut tx, &self.consumer, &event.id).await? {
                    return Ok(());
                }
                sqlx::query(insert)
                    .bind(&self.consumer)
                    .bind(&event.id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}
