//! Issue 16: nothing is kept forever, and nobody skips an event silently. Outboxes, inboxes and
//! dead letters are purged past their retention; a feed reader behind what is kept gets 410 Gone;
//! a producer whose store was recreated (another epoch) or restored (behind its readers) is read
//! again instead of skipped; NATS streams carry the age limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use axum::Router;
use souk_chassis::client::ServiceClient;
use souk_chassis::events::{self, Consumer, Outbox, RetentionConfig, Source};
use souk_chassis::test_util::{Backend, TestDatabase, test_nats};
use tower::ServiceExt;

use crate::consumer::{feed_consumer, shutdown};
use crate::helpers::{
    Fixture, Recorder, append, effects, event, eventually, execute, fixture, unique,
};

const WAIT: Duration = Duration::from_secs(20);

/// `GET /v1/events?after=…` on `outbox`'s feed: status and JSON body.
async fn feed(outbox: &Outbox, after: i64) -> (u16, serde_json::Value) {
    let request = http::Request::builder()
        .uri(format!("/v1/events?after={after}&limit=100"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = outbox.feed_router().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn ids(fx: &Fixture, outbox: &Outbox, range: std::ops::Range<usize>) -> Vec<String> {
    let mut ids = Vec::new();
    for n in range {
        let e = event(outbox.service(), n);
        append(&fx.db, &e).await;
        ids.push(e.id);
    }
    outbox.notify();
    ids
}

fn now_ms() -> i64 {
    souk_chassis::time::Timestamp::now().millis()
}

souk_chassis::backend_tests! { fixture;

    async fn old_events_go_and_a_reader_behind_them_is_told_410(fx) {
        let outbox = Outbox::new(fx.db.clone(), "orders");
        ids(&fx, &outbox, 0..5).await;
        // The first three were written long ago.
        execute(&fx.db, "UPDATE outbox SET created_ms = 0 WHERE seq <= 3").await;
        // With a relay, only what it published may go: nothing yet.
        assert_eq!(outbox.purge(now_ms() - 60_000, true).await.unwrap(), 0);
        assert_eq!(outbox.purge(now_ms() - 60_000, false).await.unwrap(), 3);
        assert_eq!(outbox.purge(now_ms() - 60_000, false).await.unwrap(), 0, "once");
        let state = outbox.state().await.unwrap();
        assert_eq!((state.purged_through, state.head), (3, 5));

        let (status, gone) = feed(&outbox, 0).await;
        assert_eq!(status, 410, "{gone}");
        assert_eq!(gone["type"], "urn:souk:problem:events-gone");
        assert_eq!(gone["oldest_kept"], 4);
        assert_eq!(gone["epoch"], state.epoch.as_str());
        let (status, page) = feed(&outbox, 3).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["events"].as_array().unwrap().len(), 2);
        assert_eq!((page["epoch"].as_str(), page["head"].as_i64()), (Some(state.epoch.as_str()), Some(5)));

        // A consumer that never read them stays where it is, handling nothing, rather than skip.
        let handler = Recorder::new("late.orders", &fx.db);
        let (trigger, signal) = shutdown();
        let task = feed_consumer("late.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(effects(&fx.db, "late.orders").await.is_empty(), "nothing skipped to");
        assert_eq!(handler.calls(), 0);
        // An operator accepts the loss (moves its offset): it reads on.
        execute(&fx.db, "INSERT INTO event_offsets (consumer, position) VALUES ('late.orders', '3') \
                         ON CONFLICT (consumer) DO UPDATE SET position = excluded.position").await;
        trigger.trigger();
        task.await.unwrap();
        let (trigger, signal) = shutdown();
        let task = feed_consumer("late.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
        eventually("the kept events are handled", WAIT, || async { effects(&fx.db, "late.orders").await.len() == 2 }).await;
        trigger.trigger();
        task.await.unwrap();
    }

    async fn a_producer_store_recreated_is_read_again_from_its_start(fx) {
        let first = Outbox::new(fx.db.clone(), "orders");
        let mut sent = ids(&fx, &first, 0..3).await;
        // The consumer reads the producer through a router the test can point elsewhere.
        let current: Arc<Mutex<Router>> = Arc::new(Mutex::new(first.feed_router()));
        let serving = Arc::clone(&current);
        let router = Router::new().fallback(move |request: axum::extract::Request| {
            let router = serving.lock().unwrap().clone();
            async move { router.oneshot(request).await.unwrap() }
        });
        let client = ServiceClient::in_process("orders", router, Duration::from_secs(2));
        let consumer = || {
            Consumer::new("reader.orders", "orders", Source::Feed(client.clone()), fx.db.clone())
                .long_poll(Duration::from_millis(200))
                .backoff(Duration::from_millis(10), Duration::from_millis(50))
        };
        let handler = Recorder::new("reader.orders", &fx.db);
        let (trigger, signal) = shutdown();
        let task = consumer().spawn(handler.clone(), signal);
        eventually("the first store's events are handled", WAIT, || async { effects(&fx.db, "reader.orders").await.len() == 3 }).await;

        // The producer's store is recreated: a fresh outbox (another epoch) numbering from 1.
        let recreated = TestDatabase::create(Backend::Sqlite).await.unwrap();
        let db = souk_chassis::Database::connect(&recreated.config).await.unwrap();
        db.migrate(&souk_chassis::db::Migrations {
            sqlite: &[events::OUTBOX_MIGRATION_SQLITE, events::OUTBOX_META_MIGRATION_SQLITE],
            postgres: &[],
        }).await.unwrap();
        let second = Outbox::new(db.clone(), "orders");
        for n in 3..5 {
            let e = event("orders", n);
            append(&db, &e).await;
            sent.push(e.id);
        }
        assert_ne!(second.state().await.unwrap().epoch, first.state().await.unwrap().epoch);
        *current.lock().unwrap() = second.feed_router();
        eventually("the recreated store's events are handled, none skipped", WAIT, || async {
            effects(&fx.db, "reader.orders").await.len() == 5
        }).await;
        assert_eq!(effects(&fx.db, "reader.orders").await, sent);
        trigger.trigger();
        task.await.unwrap();
    }

    async fn a_producer_behind_its_reader_is_read_on_from_its_head(fx) {
        let outbox = Outbox::new(fx.db.clone(), "orders");
        ids(&fx, &outbox, 0..3).await;
        let handler = Recorder::new("ahead.orders", &fx.db);
        let (trigger, signal) = shutdown();
        let task = feed_consumer("ahead.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
        eventually("three handled", WAIT, || async { effects(&fx.db, "ahead.orders").await.len() == 3 }).await;
        trigger.trigger();
        task.await.unwrap();
        // Its position is past the producer's head (a producer restored from an older backup).
        execute(&fx.db, "UPDATE event_offsets SET position = '40' WHERE consumer = 'ahead.orders'").await;
        let (trigger, signal) = shutdown();
        let task = feed_consumer("ahead.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
        eventually("the consumer notices and goes back", WAIT, || async {
            souk_chassis::test_util::consumer_position(&fx.db, "ahead.orders").await <= 3
        }).await;
        let later = ids(&fx, &outbox, 3..5).await;
        eventually("what the producer writes next is read", WAIT, || async { effects(&fx.db, "ahead.orders").await.len() == 5 }).await;
        assert_eq!(effects(&fx.db, "ahead.orders").await[3..], later[..]);
        trigger.trigger();
        task.await.unwrap();
    }

    async fn inbox_entries_and_dead_letters_go_after_their_retention(fx) {
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let handler = Recorder::new("brief.orders", &fx.db);
        handler.script.lock().unwrap().poison.insert("s1".into());
        ids(&fx, &outbox, 0..3).await;
        let retention = RetentionConfig { events_secs: 1, inbox_secs: 1, dead_letters_secs: 1, purge_interval_secs: 1 };
        let (trigger, signal) = shutdown();
        let task = feed_consumer("brief.orders", &outbox, &fx.db)
            .retention(retention)
            .spawn(handler.clone(), signal);
        eventually("two handled", WAIT, || async { effects(&fx.db, "brief.orders").await.len() == 2 }).await;
        assert_eq!(events::dead_letters(&fx.db, "brief.orders").await.unwrap().len(), 1);
        eventually("the inbox and the dead letters are purged", WAIT, || async {
            souk_chassis::test_util::inbox_count(&fx.db, "brief.orders").await == 0
                && events::dead_letters(&fx.db, "brief.orders").await.unwrap().is_empty()
        }).await;
        trigger.trigger();
        task.await.unwrap();
    }
}

#[tokio::test]
async fn streams_carry_the_age_limit_and_existing_ones_get_it() {
    let Some(mut nats) = test_nats().await else {
        return;
    };
    let Some(fx) = fixture(Backend::Sqlite).await else {
        return;
    };
    let service = unique("aged");
    let context = jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    // A stream made before retention: no age limit.
    context
        .create_stream(jetstream::stream::Config {
            name: events::stream_name(&service),
            subjects: vec![format!("souk.{service}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    nats.stream_max_age_secs = 3600;
    let outbox = Outbox::new(fx.db.clone(), &service);
    append(&fx.db, &event(&service, 0)).await;
    let (trigger, signal) = shutdown();
    let relay = outbox.spawn_relay(nats.clone(), signal);
    let max_age = || async {
        let mut stream = context
            .get_stream(events::stream_name(&service))
            .await
            .unwrap();
        stream.info().await.unwrap().config.max_age
    };
    eventually("the stream gets the age limit", WAIT, || async {
        max_age().await == Duration::from_secs(3600)
    })
    .await;
    trigger.trigger();
    relay.await.unwrap();
    context
        .delete_stream(events::stream_name(&service))
        .await
        .unwrap();
}
