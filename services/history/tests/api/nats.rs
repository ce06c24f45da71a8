//! The NATS transport, once, against the server named by `SOUK_TEST_NATS_URL` (skipped when it
//! is not set): the producers' outboxes relayed to JetStream, history's durable consumers
//! reading them. Producer names are unique per run, so the streams (`SOUK_<NAME>`) and durable
//! consumers never meet another test's, and they are deleted afterwards.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use souk_chassis::Shutdown;
use souk_chassis::client::{ClientConfig, ServiceClient};
use souk_chassis::events::{self, Transport};
use souk_chassis::test_util::{Backend, TestDatabase, TestIssuer, TestServer, test_nats};
use souk_history::{Config, ConsumerConfig, Producers};
use uuid::Uuid;

use crate::fixtures::{captured, confirmed, placed};
use crate::helpers::{Producer, eventually, fake_identity, read_json};

#[tokio::test]
async fn events_relayed_through_nats_build_the_same_purchase() {
    let Some(nats) = test_nats().await else {
        return;
    };
    souk_chassis::test_util::init_test_logging();
    let suffix = &Uuid::now_v7().simple().to_string()[20..];
    let issuer = Arc::new(TestIssuer::start().await);
    let orders = Producer::start(&format!("orders_{suffix}"), &issuer).await;
    let payments = Producer::start(&format!("payments_{suffix}"), &issuer).await;
    let (trigger, shutdown) = Shutdown::manual(Duration::from_secs(2));
    for producer in [&orders, &payments] {
        producer.outbox.spawn_relay(nats.clone(), shutdown.clone());
    }

    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let identity = TestServer::spawn(fake_identity(Arc::clone(&issuer))).await;
    let mut config = Config {
        database: db.config.clone(),
        auth: issuer.auth_config("history"),
        consumers: ConsumerConfig {
            retry_base_ms: 20,
            retry_max_ms: 500,
            ..ConsumerConfig::default()
        },
        ..Config::default()
    };
    config.events.transport = Transport::Nats;
    config.events.nats = nats.clone();
    // Nothing is served at these addresses: with NATS, history never calls the producers.
    let nowhere = ClientConfig::with_url("http://127.0.0.1:9");
    let producers = Producers {
        orders: ServiceClient::http(orders.name.clone(), &nowhere),
        payments: ServiceClient::http(payments.name.clone(), &nowhere),
        identity: ServiceClient::http("identity", &ClientConfig::with_url(identity.url(""))),
    };
    let history = souk_history::build_with(&config, producers, &shutdown)
        .await
        .unwrap();
    let server = TestServer::spawn(history.router.clone()).await;

    let order = Uuid::now_v7();
    // Payments first: the two producers' streams are read independently.
    payments.publish(&captured(order, "alice")).await;
    orders.publish(&placed(order, "alice")).await;
    orders.publish(&confirmed(order, "alice")).await;
    let path = format!("/v1/history/{order}");
    let token = issuer.user_token("alice", "user");
    eventually("the purchase is confirmed and paid", || async {
        let response = server
            .client
            .get(server.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (status, purchase) = read_json(response).await;
        status.is_success()
            && purchase["status"] == "confirmed"
            && purchase["payment"] == json!({"brand": "visa", "last4": "4242"})
    })
    .await;
    let consumers = events::dead_letters(
        history.store.database(),
        &format!("history.{}", orders.name),
    )
    .await
    .unwrap();
    assert!(consumers.is_empty(), "nothing parked");

    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(20), history.stopped())
        .await
        .expect("the consumers stop");
    let context = async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    for producer in [&orders, &payments] {
        context
            .delete_stream(events::stream_name(&producer.name))
            .await
            .unwrap();
    }
}
