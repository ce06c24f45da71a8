//! Prices come from the catalog only, on every read (through a short cache), and a catalog that
//! cannot answer degrades the answer instead of failing it.

use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use souk_chassis::client::ServiceClient;
use souk_chassis::test_util::{TestDatabase, TestIssuer, TestServer};
use uuid::Uuid;

use crate::helpers::{FakeCatalog, ids, spawn, spawn_uncached, spawn_with};

fn usd(amount: i64) -> Value {
    json!({ "amount": amount, "currency": "USD" })
}

cart_tests! { spawn;

    async fn prices_sent_by_the_client_are_ignored(app) {
        let mug = app.catalog.add(1250);
        let body = json!({ "quantity": 2, "unit_price": 1, "line_total": 2,
            "price": { "amount": 1, "currency": "USD" }, "total": { "amount": 1, "currency": "EUR" } });
        let (status, cart) = app.set_as(&app.token, mug, body).await;
        assert_eq!(status, StatusCode::OK, "{cart}");
        assert_eq!(cart["items"][0]["unit_price"], usd(1250));
        assert_eq!(cart["items"][0]["line_total"], usd(2500));
        assert_eq!(cart["total"], usd(2500));
        assert_eq!(app.cart().await, cart);
    }

    async fn totals_are_the_sum_of_unit_price_times_quantity(app) {
        // Random carts, a bounded number of them: each case is a dozen HTTP calls.
        let lines = proptest::collection::vec((0..100_000i64, 1..=99i64), 1..=12);
        let mut runner = TestRunner::deterministic();
        for _ in 0..6 {
            let case = lines.new_tree(&mut runner).unwrap().current();
            app.call(Method::DELETE, "/v1/cart", Some(&app.token), None).await;
            let mut expected = 0;
            for &(amount, quantity) in &case {
                assert_eq!(app.set(app.catalog.add(amount), quantity).await.0, StatusCode::OK);
                expected += amount * quantity;
            }
            let cart = app.cart().await;
            assert_eq!(cart["total"], usd(expected), "{case:?}");
            for (line, &(amount, quantity)) in cart["items"].as_array().unwrap().iter().zip(&case) {
                assert_eq!(line["line_total"], usd(amount * quantity));
            }
        }
    }

    async fn a_product_the_catalog_does_not_know_is_refused(app) {
        let (status, problem) = app.set(Uuid::now_v7(), 1).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["type"], "urn:souk:problem:unknown-product");
        assert_eq!(app.cart().await["items"], json!([]));
    }

    async fn a_second_read_within_the_cache_time_does_not_ask_the_catalog(app) {
        let (mug, pan) = (app.catalog.add(100), app.catalog.add(200));
        app.set(mug, 1).await;
        app.set(pan, 1).await;
        let asked = app.catalog.calls();
        let first = app.cart().await;
        let second = app.cart().await;
        assert_eq!(app.catalog.calls(), asked);
        assert_eq!(first, second);
        // Another user's cart with the same products is priced from the same cache.
        let other = app.new_user();
        app.set_as(&other, mug, json!({ "quantity": 3 })).await;
        assert_eq!(app.cart_of(&other).await["total"], usd(300));
        assert_eq!(app.catalog.calls(), asked);
    }
}

cart_tests! { spawn_uncached;

    async fn a_product_deleted_from_the_catalog_is_flagged_not_dropped(app) {
        let (mug, pan) = (app.catalog.add(100), app.catalog.add(200));
        app.set(mug, 1).await;
        app.set(pan, 2).await;
        app.catalog.remove(mug);
        let cart = app.cart().await;
        assert_eq!(ids(&cart), [mug, pan]);
        assert_eq!(cart["items"][0]["status"], "unavailable");
        assert_eq!(cart["items"][0]["unit_price"], Value::Null);
        assert_eq!(cart["items"][0]["line_total"], Value::Null);
        assert_eq!(cart["items"][1]["status"], "ok");
        assert_eq!(cart["total"], Value::Null);
        // The catalog answered: nothing is degraded, the product is just gone.
        assert_eq!(cart["degraded"], json!([]));
        let (status, _) = app
            .call(Method::DELETE, &format!("/v1/cart/items/{mug}"), Some(&app.token), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(app.cart().await["total"], usd(400));
    }

    async fn a_catalog_outage_degrades_reads_and_changes_still_work(app) {
        let (mug, pan) = (app.catalog.add(100), app.catalog.add(200));
        app.set(mug, 1).await;
        app.catalog.set_down(true);
        let cart = app.cart().await;
        assert_eq!(cart["degraded"], json!(["prices"]));
        assert_eq!(cart["total"], Value::Null);
        assert_eq!(cart["items"][0]["status"], "price_unavailable");
        assert_eq!(cart["items"][0]["quantity"], 1);
        // Changes are accepted while the catalog is down, and priced once it is back.
        let (status, cart) = app.set(pan, 3).await;
        assert_eq!(status, StatusCode::OK, "{cart}");
        assert_eq!(ids(&cart), [mug, pan]);
        assert_eq!(cart["items"][1]["status"], "price_unavailable");
        assert_eq!(app.set(mug, 0).await.0, StatusCode::OK);
        app.catalog.set_down(false);
        let cart = app.cart().await;
        assert_eq!(cart["degraded"], json!([]));
        assert_eq!(cart["items"][0]["status"], "ok");
        assert_eq!(cart["total"], usd(600));
    }

    async fn without_a_cache_every_read_asks_the_catalog_once(app) {
        let (mug, pan) = (app.catalog.add(100), app.catalog.add(200));
        app.set(mug, 1).await;
        app.set(pan, 1).await;
        let asked = app.catalog.calls();
        app.cart().await;
        app.cart().await;
        assert_eq!(app.catalog.calls(), asked + 2);
    }
}

async fn spawn_unreachable_catalog(
    backend: crate::helpers::Backend,
) -> Option<crate::helpers::TestApp> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    spawn_with(backend, |config| {
        config.catalog.url = format!("http://{closed}")
    })
    .await
}

cart_tests! { spawn_unreachable_catalog;

    async fn an_unreachable_catalog_degrades_too(app) {
        let product = Uuid::now_v7();
        let (status, cart) = app.set(product, 2).await;
        assert_eq!(status, StatusCode::OK, "{cart}");
        assert_eq!(cart["items"][0]["status"], "price_unavailable");
        assert_eq!(cart["degraded"], json!(["prices"]));
    }
}

/// `souk monolith` hands the cart an in-process catalog instead of a URL.
#[tokio::test]
async fn an_in_process_catalog_prices_the_cart() {
    let db = TestDatabase::create(souk_chassis::test_util::Backend::Sqlite)
        .await
        .unwrap();
    let issuer = TestIssuer::start().await;
    let config = souk_cart::Config {
        store: souk_cart::StoreConfig::with_url(db.config.url.expose()),
        auth: issuer.auth_config("cart"),
        ..souk_cart::Config::default()
    };
    let catalog = FakeCatalog::default();
    let mug = catalog.add(450);
    let client = ServiceClient::in_process("catalog", catalog.router(), Duration::from_secs(1));
    let cart = souk_cart::build_with(&config, client).await.unwrap();
    let server = TestServer::spawn(cart.router).await;
    let token = issuer.user_token("someone", "user");
    let response = server
        .client
        .put(server.url(&format!("/v1/cart/items/{mug}")))
        .bearer_auth(&token)
        .json(&json!({ "quantity": 2 }))
        .send()
        .await
        .unwrap();
    let (status, cart) = crate::helpers::read_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cart["total"], usd(900));
}
