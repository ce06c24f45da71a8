//! The relay to real NATS JetStream: each event once, in order, de-duplicated on re-publish,
//! nothing left behind at shutdown.

use std::time::Duration;

use async_nats::jetstream;
use souk_chassis::Database;
use souk_chassis::events::{self, Outbox};
use souk_chassis::test_util::{Backend, test_nats};

use crate::consumer::shutdown;
use crate::helpers::{append, event, eventually, execute, fixture, unique};

async fn unpublished(db: &Database) -> i64 {
    let sql = "SELECT COUNT(*) FROM outbox WHERE published_ms IS NULL";
    match db {
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .unwrap()
}

/// The stream's messages in order: (subject, Nats-Msg-Id, event id in the payload).
async fn stored(stream: &jetstream::stream::Stream) -> Vec<(String, String, String)> {
    let info = stream.get_info().await.unwrap();
    let mut messages = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let message = stream.get_raw_message(seq).await.unwrap();
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.to_string())
            .unwrap_or_default();
        let event: events::Event = serde_json::from_slice(&message.payload).unwrap();
        messages.push((message.subject.to_string(), id, event.id));
    }
    messages
}

#[tokio::test]
async fn the_relay_publishes_each_event_once_in_order_and_flushes_at_shutdown() {
    let Some(nats) = test_nats().await else {
        return;
    };
    let Some(fx) = fixture(Backend::Sqlite).await else {
        return;
    };
    let service = unique("relay");
    let outbox = Outbox::new(fx.db.clone(), &service);
    let sent: Vec<_> = (0..5).map(|n| event(&service, n)).collect();
    for e in &sent {
        append(&fx.db, e).await;
    }
    let (trigger, signal) = shutdown();
    let relay = outbox.spawn_relay(nats.clone(), signal);
    eventually(
        "the outbox is published",
        Duration::from_secs(20),
        || async { unpublished(&fx.db).await == 0 },
    )
    .await;

    let context = jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    let stream = context
        .get_stream(events::stream_name(&service))
        .await
        .unwrap();
    let expected: Vec<_> = sent
        .iter()
        .map(|e| {
            (
                format!("souk.{service}.thing_happened.v1"),
                e.id.clone(),
                e.id.clone(),
            )
        })
        .collect();
    assert_eq!(stored(&stream).await, expected);

    // A crash after publishing but before marking: the rows go out again, JetStream keeps one.
    execute(&fx.db, "UPDATE outbox SET published_ms = NULL").await;
    outbox.notify();
    eventually(
        "the outbox is published again",
        Duration::from_secs(20),
        || async { unpublished(&fx.db).await == 0 },
    )
    .await;
    assert_eq!(
        stored(&stream).await,
        expected,
        "re-published events are de-duplicated"
    );

    // Shutdown right after appending: the relay publishes them before it stops.
    let late: Vec<_> = (5..8).map(|n| event(&service, n)).collect();
    for e in &late {
        append(&fx.db, e).await;
    }
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .expect("the relay stops")
        .unwrap();
    assert_eq!(unpublished(&fx.db).await, 0);
    assert_eq!(stored(&stream).await.len(), 8);
    context
        .delete_stream(events::stream_name(&service))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_relay_waits_for_nats_and_publishes_once_it_answers() {
    let Some(nats) = test_nats().await else {
        return;
    };
    let Some(fx) = fixture(Backend::Sqlite).await else {
        return;
    };
    let service = unique("relay");
    let outbox = Outbox::new(fx.db.clone(), &service);
    append(&fx.db, &event(&service, 0)).await;

    // Nobody listens on this port: the relay retries, and shuts down cleanly while it does.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = events::NatsConfig::with_url(format!("nats://{}", unused.local_addr().unwrap()));
    drop(unused);
    let (trigger, signal) = shutdown();
    let relay = outbox.spawn_relay(dead, signal);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(unpublished(&fx.db).await, 1);
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .expect("the relay stops")
        .unwrap();
    assert_eq!(unpublished(&fx.db).await, 1, "kept for the next start");

    let (trigger, signal) = shutdown();
    let relay = outbox.spawn_relay(nats.clone(), signal);
    eventually(
        "the outbox is published",
        Duration::from_secs(20),
        || async { unpublished(&fx.db).await == 0 },
    )
    .await;
    trigger.trigger();
    relay.await.unwrap();
    let context = jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    context
        .delete_stream(events::stream_name(&service))
        .await
        .unwrap();
}
