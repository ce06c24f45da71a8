//! Consumers over the feed and over NATS: each event handled once, in order, across
//! redeliveries, restarts and a second instance.

use std::time::Duration;

use souk_chassis::client::ServiceClient;
use souk_chassis::events::{Consumer, Outbox, Source};
use souk_chassis::server::{Shutdown, ShutdownTrigger};
use souk_chassis::test_util::{Backend, test_nats};

use crate::helpers::{
    Fixture, Recorder, append, effects, event, eventually, execute, fixture, unique,
};

const WAIT: Duration = Duration::from_secs(20);

/// A consumer of `outbox`'s feed, called in-process as the monolith does, on quick timings.
pub(crate) fn feed_consumer(name: &str, outbox: &Outbox, db: &souk_chassis::Database) -> Consumer {
    let client = ServiceClient::in_process(
        outbox.service(),
        outbox.feed_router(),
        Duration::from_secs(2),
    );
    Consumer::new(name, outbox.service(), Source::Feed(client), db.clone())
        .long_poll(Duration::from_millis(500))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
}

pub(crate) fn shutdown() -> (ShutdownTrigger, Shutdown) {
    Shutdown::manual(Duration::from_secs(5))
}

async fn stop(trigger: ShutdownTrigger, task: tokio::task::JoinHandle<()>) {
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the consumer stops")
        .unwrap();
}

async fn appended(fx: &Fixture, outbox: &Outbox, range: std::ops::Range<usize>) -> Vec<String> {
    let mut ids = Vec::new();
    for n in range {
        let e = event(outbox.service(), n);
        append(&fx.db, &e).await;
        ids.push(e.id);
    }
    outbox.notify();
    ids
}

souk_chassis::backend_tests! { fixture;

    async fn a_feed_consumer_handles_each_event_once_in_order_and_resumes_from_its_offset(fx) {
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let handler = Recorder::new("inventory.orders", &fx.db);
        let mut sent = appended(&fx, &outbox, 0..5).await;

        let (trigger, signal) = shutdown();
        let task = feed_consumer("inventory.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
        eventually("five events are handled", WAIT, || async { effects(&fx.db, "inventory.orders").await.len() == 5 }).await;
        stop(trigger, task).await;

        // Restarted, it goes on from its offset: only the new events reach the handler.
        sent.extend(appended(&fx, &outbox, 5..8).await);
        let (trigger, signal) = shutdown();
        let task = feed_consumer("inventory.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
        eventually("eight events are handled", WAIT, || async { effects(&fx.db, "inventory.orders").await.len() == 8 }).await;
        assert_eq!(handler.calls(), 8);
        stop(trigger, task).await;
        assert_eq!(effects(&fx.db, "inventory.orders").await, sent);

        // Everything delivered again (an offset lost): the inbox skips all of it.
        execute(&fx.db, "UPDATE event_offsets SET position = '0'").await;
        let (trigger, signal) = shutdown();
        let task = feed_consumer("inventory.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
        let last = outbox.read_after(0, 100).await.unwrap().last().unwrap().seq.unwrap().to_string();
        eventually("the offset is back at the end", WAIT, || async {
            let position: String = match &fx.db {
                souk_chassis::Database::Sqlite(pool) => sqlx::query_scalar("SELECT position FROM event_offsets").fetch_one(pool).await.unwrap(),
                souk_chassis::Database::Postgres(pool) => sqlx::query_scalar("SELECT position FROM event_offsets").fetch_one(pool).await.unwrap(),
            };
            position == last
        }).await;
        stop(trigger, task).await;
        assert_eq!(handler.calls(), 8, "redelivered events never reach the handler");
        assert_eq!(effects(&fx.db, "inventory.orders").await, sent);
    }

    async fn an_event_whose_source_is_not_the_producer_is_parked_never_handled(fx) {
        // The attack: an `order_cancelled` that orders did not send (another service's, forged)
        // arrives on orders' stream. The consumer refuses it and goes on with the rest.
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let handler = Recorder::new("inventory.orders", &fx.db);
        let genuine = event("orders", 1);
        let mut forged = event("orders", 2);
        forged.source = "souk/payments".into();
        let after = event("orders", 3);
        for e in [&genuine, &forged, &after] {
            append(&fx.db, e).await;
        }
        outbox.notify();
        let (trigger, signal) = shutdown();
        let task = feed_consumer("inventory.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
        eventually("the genuine events are handled", WAIT, || async { effects(&fx.db, "inventory.orders").await.len() == 2 }).await;
        stop(trigger, task).await;
        assert_eq!(effects(&fx.db, "inventory.orders").await, [genuine.id.clone(), after.id.clone()]);
        assert_eq!(handler.calls_of(&forged.subject), 0, "the forged event never reached the handler");
        let parked: Vec<(String, String)> = match &fx.db {
            souk_chassis::Database::Sqlite(pool) => sqlx::query_as("SELECT event_id, error FROM event_dead_letters").fetch_all(pool).await.unwrap(),
            souk_chassis::Database::Postgres(pool) => sqlx::query_as("SELECT event_id, error FROM event_dead_letters").fetch_all(pool).await.unwrap(),
        };
        assert_eq!(parked.len(), 1, "{parked:?}");
        assert_eq!(parked[0].0, forged.id);
        assert!(parked[0].1.contains("souk/payments"), "{parked:?}");
    }

    async fn two_instances_on_one_database_handle_each_event_once(fx) {
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let handler = Recorder::new("history.orders", &fx.db);
        handler.script.lock().unwrap().slow = Duration::from_millis(3);
        let (trigger, signal) = shutdown();
        let first = feed_consumer("history.orders", &outbox, &fx.db).spawn(handler.clone(), signal.clone());
        let second = feed_consumer("history.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
        let mut sent = Vec::new();
        for batch in 0..4 {
            sent.extend(appended(&fx, &outbox, batch * 5..batch * 5 + 5).await);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        eventually("twenty events are handled", WAIT, || async { effects(&fx.db, "history.orders").await.len() >= 20 }).await;
        // Give the slower instance time to go over the same events.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop(trigger.clone(), first).await;
        stop(trigger, second).await;
        assert_eq!(effects(&fx.db, "history.orders").await, sent, "once each, in order");
    }
}

#[tokio::test]
async fn a_nats_consumer_started_before_its_producer_waits_for_the_stream_and_never_makes_it() {
    let Some(nats) = test_nats().await else {
        return;
    };
    let Some(fx) = fixture(Backend::Sqlite).await else {
        return;
    };
    let service = unique("late");
    let consumer = unique("cons.late");
    let handler = Recorder::new(&consumer, &fx.db);
    let (trigger, signal) = shutdown();
    let task = Consumer::new(
        &consumer,
        &service,
        Source::Nats(nats.clone()),
        fx.db.clone(),
    )
    .backoff(Duration::from_millis(50), Duration::from_millis(200))
    .spawn(handler.clone(), signal);
    // A few of its attempts go by: the stream is still not there (a consumer may only look it
    // up; making it is the producer's, and NATS' permissions let only the producer).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let context = async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    let name = souk_chassis::events::stream_name(&service);
    assert!(
        context.get_stream(&name).await.is_err(),
        "the consumer made its producer's stream"
    );
    // The producer starts: its relay makes the stream, and the waiting consumer reads it.
    let outbox = Outbox::new(fx.db.clone(), &service);
    let (relay_trigger, relay_signal) = shutdown();
    let relay = outbox.spawn_relay(nats.clone(), relay_signal);
    let sent = appended(&fx, &outbox, 0..2).await;
    eventually("both events are handled", WAIT, || async {
        effects(&fx.db, &consumer).await.len() == 2
    })
    .await;
    stop(trigger, task).await;
    stop(relay_trigger, relay).await;
    assert_eq!(effects(&fx.db, &consumer).await, sent);
    context.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn a_nats_consumer_handles_each_event_once_in_order_despite_redelivery() {
    let Some(nats) = test_nats().await else {
        return;
    };
    let Some(fx) = fixture(Backend::Sqlite).await else {
        return;
    };
    let service = unique("prod");
    let consumer = unique("cons.prod");
    let outbox = Outbox::new(fx.db.clone(), &service);
    let (relay_trigger, relay_signal) = shutdown();
    let relay = outbox.spawn_relay(nats.clone(), relay_signal);
    let handler = Recorder::new(&consumer, &fx.db);
    let nats_consumer = || {
        Consumer::new(
            &consumer,
            &service,
            Source::Nats(nats.clone()),
            fx.db.clone(),
        )
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
    };

    let mut sent = appended(&fx, &outbox, 0..5).await;
    let (trigger, signal) = shutdown();
    let task = nats_consumer().spawn(handler.clone(), signal);
    eventually("five events are handled", WAIT, || async {
        effects(&fx.db, &consumer).await.len() == 5
    })
    .await;

    // The same event stored twice in the stream (a re-publish after the de-duplication window):
    // delivered twice, handled once.
    let context = async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    let again = outbox.read_after(0, 1).await.unwrap().remove(0);
    let payload = serde_json::to_vec(&again).unwrap();
    context
        .publish(
            souk_chassis::events::subject(&service, &again.type_),
            payload.into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    sent.extend(appended(&fx, &outbox, 5..6).await);
    eventually("the sixth event is handled", WAIT, || async {
        effects(&fx.db, &consumer).await.len() == 6
    })
    .await;
    stop(trigger, task).await;
    assert_eq!(
        handler.calls(),
        6,
        "the redelivered copy never reaches the handler"
    );

    // Restarted, the durable consumer goes on where it was.
    sent.extend(appended(&fx, &outbox, 6..8).await);
    let (trigger, signal) = shutdown();
    let task = nats_consumer().spawn(handler.clone(), signal);
    eventually("eight events are handled", WAIT, || async {
        effects(&fx.db, &consumer).await.len() == 8
    })
    .await;
    stop(trigger, task).await;
    stop(relay_trigger, relay).await;
    assert_eq!(handler.calls(), 8);
    assert_eq!(effects(&fx.db, &consumer).await, sent);
    // Its offset is the stream's sequence (nine messages: one copy), kept apart from a feed offset.
    let offsets: Vec<(String, String)> = match &fx.db {
        souk_chassis::Database::Sqlite(pool) => {
            sqlx::query_as("SELECT consumer, position FROM event_offsets")
                .fetch_all(pool)
                .await
                .unwrap()
        }
        souk_chassis::Database::Postgres(_) => unreachable!("this test runs on SQLite"),
    };
    assert_eq!(offsets, [(format!("{consumer}@nats"), "9".to_owned())]);
    context
        .delete_stream(souk_chassis::events::stream_name(&service))
        .await
        .unwrap();
}
