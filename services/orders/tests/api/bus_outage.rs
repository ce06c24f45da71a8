//! Issue 7 (c): the bus down for 30 s. Checkout still accepts orders and their sagas still
//! confirm (the outbox keeps the events); when the bus returns the backlog drains, and every
//! event reaches a consumer exactly once in effect.
//!
//! Here rather than in history's tests: what is on trial is orders' side of the bus (its outbox,
//! its relay, its checkout while NATS is away), and history cannot run orders without depending
//! on another service. The consumer is a chassis [`Consumer`] on the same NATS, with its own
//! inbox database, whose handler counts each event's effects.
//!
//! The test runs a NATS server of its own (`nats-server -js -sd <tempdir>` on a free port,
//! stopped and restarted by its pid), never the machine's shared one. It runs only when
//! `SOUK_TEST_NATS_URL` is set (which says NATS tests may run on this machine), and then fails
//! if `nats-server` cannot be started.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::Value;
use souk_chassis::db::Migrations;
use souk_chassis::events::{
    self, Consumer, Event, HandleError, Handler, NatsConfig, Source, Transport,
};
use souk_chassis::test_util::{Backend, NATS_URL_VAR, TestDatabase};
use souk_chassis::{Database, Shutdown};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_with};

/// How long the bus stays down.
const OUTAGE: Duration = Duration::from_secs(30);
/// How often an order is placed while it is down.
const ORDER_EVERY: Duration = Duration::from_secs(1);
/// How long the backlog may take to arrive once the bus is back: the chassis relay retries NATS
/// at most 2 s apart, and reconnecting plus publishing the backlog takes about a second more.
const DRAIN_PATIENCE: Duration = Duration::from_secs(8);
/// How long to keep watching for a late duplicate once everything arrived.
const SETTLE: Duration = Duration::from_secs(2);

#[tokio::test]
async fn the_bus_down_for_30_s_loses_nothing_and_doubles_nothing() {
    if std::env::var_os(NATS_URL_VAR).is_none() {
        eprintln!(
            "skipped: {NATS_URL_VAR} is not set, so the bus-outage test (its own nats-server) did not run"
        );
        return;
    }
    let started = Instant::now();
    let mut bus = NatsServer::start().await;
    let nats = NatsConfig::with_url(bus.url());
    let app = spawn_with(Backend::Sqlite, |config| {
        config.events.transport = Transport::Nats;
        config.events.nats = nats.clone();
    })
    .await
    .unwrap();
    let (_stop, shutdown) = Shutdown::manual(Duration::from_secs(2));
    app.instance().orders.spawn_relay(&shutdown);
    let consumer_db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let db = Database::connect(&consumer_db.config).await.unwrap();
    db.migrate(&Migrations {
        sqlite: &[
            events::INBOX_MIGRATION_SQLITE,
            events::INBOX_RETENTION_MIGRATION_SQLITE,
        ],
        postgres: &[
            events::INBOX_MIGRATION_POSTGRES,
            events::INBOX_RETENTION_MIGRATION_POSTGRES,
        ],
    })
    .await
    .unwrap();
    let effects = Effects::default();
    Consumer::new("outage.orders", "orders", Source::Nats(nats.clone()), db)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .spawn(effects.clone(), shutdown.clone());

    // The bus works: a few orders' events arrive.
    let before = place_and_confirm(&app, 3).await;
    wait_for(
        &effects,
        2 * before.len(),
        DRAIN_PATIENCE,
        "the orders placed before the outage",
    )
    .await;

    bus.stop();
    let down = Instant::now();
    let mut during = Vec::new();
    while down.elapsed() + ORDER_EVERY < OUTAGE {
        let tick = Instant::now();
        during.extend(place_and_confirm(&app, 1).await);
        tokio::time::sleep(ORDER_EVERY.saturating_sub(tick.elapsed())).await;
    }
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    let handled_while_down = effects.total() - 2 * before.len();
    let backlog = app
        .scalar("SELECT COUNT(*) FROM outbox WHERE published_ms IS NULL")
        .await;
    assert_eq!(
        backlog,
        2 * during.len() as i64,
        "every event of the outage waits in the outbox"
    );

    bus.restart().await;
    let back = Instant::now();
    let back_ms = unix_ms();
    let expected: Vec<Value> = app.events().await;
    assert_eq!(
        expected.len(),
        2 * (before.len() + during.len()),
        "placed and confirmed per order"
    );
    wait_for(
        &effects,
        expected.len(),
        DRAIN_PATIENCE,
        "the backlog after the bus returned",
    )
    .await;
    let drained = back.elapsed();
    tokio::time::sleep(SETTLE).await;

    // Exactly once in effect: every outbox event, each handled once, and nothing else.
    let seen = effects.snapshot();
    let duplicates: u32 = seen.values().map(|(_, count)| count - 1).sum();
    let outbox_ids: std::collections::HashSet<&str> =
        expected.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let seen_ids: std::collections::HashSet<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(
        seen_ids, outbox_ids,
        "the consumer saw exactly the outbox's events"
    );
    assert_eq!(duplicates, 0, "{seen:?}");
    // The consumer's view of each order equals orders' own.
    let projection = effects.projection();
    for id in before.iter().chain(&during) {
        assert_eq!(
            projection.get(id).map(String::as_str),
            Some("souk.orders.order_confirmed.v1"),
            "order {id}"
        );
    }
    assert_eq!(projection.len(), before.len() + during.len());
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM outbox WHERE published_ms IS NULL")
            .await,
        0
    );
    let published_after = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM outbox WHERE published_ms >= {back_ms}"
        ))
        .await;
    assert_eq!(
        published_after, backlog,
        "the backlog was published once the bus was back"
    );
    let stored = bus.stream_messages("SOUK_ORDERS").await;
    assert_eq!(
        stored,
        expected.len() as u64,
        "JetStream holds each event once"
    );
    println!(
        "bus outage: {} orders placed while the bus was down {:.0?} (all 202, all confirmed), \
         {handled_while_down} events handled meanwhile; {published_after} events published after it \
         returned, drained in {drained:.1?}; {} events each handled once, duplicates in effect {duplicates}, \
         stream messages {stored}; test took {:.1?}",
        during.len(),
        OUTAGE,
        seen.len(),
        started.elapsed(),
    );
}

/// Places `count` orders (each must be accepted) and waits for each saga to confirm.
async fn place_and_confirm(app: &TestApp, count: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let shopper = app.shopper(1);
        let (status, _, body) = app.place(&shopper, Some(&Uuid::now_v7().to_string())).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "confirmed", "{order}");
        ids.push(id);
    }
    ids
}

/// Waits until `effects` holds `count` distinct events, failing with `what` after `patience`.
async fn wait_for(effects: &Effects, count: usize, patience: Duration, what: &str) {
    let started = Instant::now();
    while effects.distinct() < count {
        assert!(
            started.elapsed() < patience,
            "{what}: {} of {count} events arrived within {patience:?}",
            effects.distinct()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn unix_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

impl TestApp {
    /// One number from orders' database.
    async fn scalar(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.database() {
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }
}

/// A handler whose effect is counting: event id → (the event, how often it was handled).
#[derive(Debug, Clone, Default)]
struct Effects(Arc<Mutex<HashMap<String, (Event, u32)>>>);

impl Effects {
    fn snapshot(&self) -> HashMap<String, (Event, u32)> {
        self.0.lock().unwrap().clone()
    }

    fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn total(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .values()
            .map(|(_, n)| *n as usize)
            .sum()
    }

    /// Each order's latest event type, as a projection keeping the furthest status would.
    fn projection(&self) -> HashMap<Uuid, String> {
        let mut latest: HashMap<Uuid, String> = HashMap::new();
        for (event, _) in self.0.lock().unwrap().values() {
            let order: Uuid = event.subject.parse().unwrap();
            let entry = latest.entry(order).or_insert_with(|| event.type_.clone());
            if event.type_.ends_with("order_confirmed.v1") {
                entry.clone_from(&event.type_);
            }
        }
        latest
    }
}

impl Handler for Effects {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        let mut seen = self.0.lock().unwrap();
        seen.entry(event.id.clone())
            .or_insert_with(|| (event.clone(), 0))
            .1 += 1;
        Ok(())
    }
}

/// A `nats-server` process of this test's own, with JetStream storing in a temporary folder.
struct NatsServer {
    port: u16,
    monitor: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts one on free loopback ports, or fails the test.
    async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            monitor: free_port(),
            store: tempfile::tempdir().unwrap(),
            child: None,
        };
        assert_ne!(server.port, 4222, "never the shared server's port");
        server.restart().await;
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.store.path().join("nats.log")
    }

    /// Starts the process (again: same ports, same store) and waits until JetStream is ready.
    async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-m",
                &self.monitor.to_string(),
            ])
            .arg("-js")
            .arg("-sd")
            .arg(self.store.path().join("jetstream"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{NATS_URL_VAR} is set but nats-server cannot be started: {e}")
            });
        self.child = Some(child);
        let started = Instant::now();
        let health = format!(
            "http://127.0.0.1:{}/healthz?js-enabled-only=true",
            self.monitor
        );
        loop {
            let ready = match reqwest::get(&health).await {
                Ok(response) => response.status().is_success(),
                Err(_) => false,
            };
            if ready && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "nats-server exited ({status}): {}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server not ready within 10 s: {}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process (SIGKILL, by its pid) and reaps it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How many messages JetStream holds in `stream` (from the monitoring endpoint).
    async fn stream_messages(&self, stream: &str) -> u64 {
        let url = format!(
            "http://127.0.0.1:{}/jsz?accounts=true&streams=true",
            self.monitor
        );
        let jsz: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        let streams = jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten());
        streams
            .filter(|s| s["name"] == stream)
            .map(|s| s["state"]["messages"].as_u64().unwrap())
            .next()
            .unwrap_or_else(|| panic!("no stream {stream} in {jsz}"))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
