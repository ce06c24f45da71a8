//! The outbox and its feed: transactional appends, paging, long-polls, ordering under
//! concurrency, and the service-token guard.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use souk_chassis::Database;
use souk_chassis::auth::AuthVerifier;
use souk_chassis::events::{self, Outbox};
use souk_chassis::test_util::{TestIssuer, TestServer};
use tower::ServiceExt;

use crate::helpers::{append, event, fixture};

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn seqs(page: &serde_json::Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["seq"].as_i64().unwrap())
        .collect()
}

souk_chassis::backend_tests! { fixture;

    async fn an_append_in_a_rolled_back_transaction_publishes_nothing(fx) {
        let (lost, kept) = (event("orders", 1), event("orders", 2));
        match &fx.db {
            Database::Sqlite(pool) => {
                let mut tx = pool.begin().await.unwrap();
                events::append_sqlite(&mut tx, &lost).await.unwrap();
                tx.rollback().await.unwrap();
            }
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await.unwrap();
                events::append_postgres(&mut tx, &lost).await.unwrap();
                tx.rollback().await.unwrap();
            }
        }
        append(&fx.db, &kept).await;
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let read = outbox.read_after(0, 10).await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].id, kept.id);
        assert_eq!(read[0].data, kept.data);
        let (status, page) = get(&outbox.feed_router(), "/v1/events").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["events"][0]["event"]["id"], kept.id.as_str());
        assert_eq!(page["events"][0]["event"]["type"], "souk.orders.thing_happened.v1");
        assert_eq!(page["events"].as_array().unwrap().len(), 1);
    }

    async fn the_feed_pages_in_order_and_refuses_bad_parameters(fx) {
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let router = outbox.feed_router();
        let sent: Vec<_> = (0..7).map(|n| event("orders", n)).collect();
        for e in &sent {
            append(&fx.db, e).await;
        }
        let mut after = 0;
        let mut ids = Vec::new();
        for expected in [3, 3, 1, 0] {
            let (status, page) = get(&router, &format!("/v1/events?after={after}&limit=3")).await;
            assert_eq!(status, StatusCode::OK);
            let got = seqs(&page);
            assert_eq!(got.len(), expected);
            assert!(got.windows(2).all(|w| w[0] < w[1]) && got.iter().all(|s| *s > after));
            let next = page["next"].as_i64().unwrap();
            assert_eq!(next, got.last().copied().unwrap_or(after));
            ids.extend(page["events"].as_array().unwrap().iter().map(|i| i["event"]["id"].as_str().unwrap().to_owned()));
            after = next;
        }
        assert_eq!(ids, sent.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
        for bad in ["after=-1", "limit=0", "limit=501", "wait_ms=30001", "after=abc", "limit=x"] {
            let response = router
                .clone()
                .oneshot(Request::get(format!("/v1/events?{bad}")).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(response.headers()["content-type"], "application/problem+json", "{bad}");
        }
    }

    async fn a_long_poll_wakes_when_an_event_arrives(fx) {
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let server = TestServer::spawn(outbox.feed_router()).await;
        let started = Instant::now();
        let page: serde_json::Value = server.client.get(server.url("/v1/events?wait_ms=300")).send().await.unwrap().json().await.unwrap();
        assert!(page["events"].as_array().unwrap().is_empty());
        assert_eq!(page["next"], 0);
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());

        // Woken by notify(), well before the wait ends.
        let poll = tokio::spawn({
            let (client, url) = (server.client.clone(), server.url("/v1/events?wait_ms=20000"));
            async move { client.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let first = event("orders", 1);
        append(&fx.db, &first).await;
        outbox.notify();
        let page = poll.await.unwrap();
        assert_eq!(page["events"][0]["event"]["id"], first.id.as_str());
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

        // Without notify(), polling finds it.
        let after = page["next"].as_i64().unwrap();
        let poll = tokio::spawn({
            let (client, url) = (server.client.clone(), server.url(&format!("/v1/events?after={after}&wait_ms=20000")));
            async move { client.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let second = event("orders", 2);
        append(&fx.db, &second).await;
        let page = poll.await.unwrap();
        assert_eq!(page["events"][0]["event"]["id"], second.id.as_str());
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    async fn concurrent_appends_are_never_skipped_by_a_concurrent_reader(fx) {
        // Writers hold their transaction open after appending, in varying lengths, while a
        // reader pages through the feed as fast as it can. Without ordered commits the reader
        // would see a later sequence number first and skip the earlier one for good.
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let done = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn({
            let (outbox, done) = (outbox.clone(), done.clone());
            async move {
                let (mut after, mut seen) = (0, Vec::new());
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = outbox.read_after(after, 500).await.unwrap();
                    for e in &page {
                        after = e.seq.unwrap();
                        seen.push(e.id.clone());
                    }
                    if finished && page.is_empty() {
                        return seen;
                    }
                    tokio::task::yield_now().await;
                }
            }
        });
        let writers: Vec<_> = (0..40usize)
            .map(|n| {
                let db = fx.db.clone();
                tokio::spawn(async move {
                    let e = event("orders", n);
                    let hold = Duration::from_millis((n as u64 * 7) % 11);
                    let commit = n % 5 != 4;
                    match &db {
                        Database::Sqlite(pool) => {
                            let mut tx = pool.begin().await.unwrap();
                            events::append_sqlite(&mut tx, &e).await.unwrap();
                            tokio::time::sleep(hold).await;
                            if commit { tx.commit().await.unwrap() } else { tx.rollback().await.unwrap() }
                        }
                        Database::Postgres(pool) => {
                            let mut tx = pool.begin().await.unwrap();
                            events::append_postgres(&mut tx, &e).await.unwrap();
                            tokio::time::sleep(hold).await;
                            if commit { tx.commit().await.unwrap() } else { tx.rollback().await.unwrap() }
                        }
                    }
                    commit.then_some(e.id)
                })
            })
            .collect();
        let mut committed = Vec::new();
        for writer in writers {
            committed.extend(writer.await.unwrap());
        }
        done.store(true, Ordering::SeqCst);
        let mut seen = reader.await.unwrap();
        assert_eq!(seen.len(), committed.len(), "the reader skipped or repeated events");
        let all: Vec<_> = outbox.read_after(0, 500).await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(seen, all, "the reader saw them out of order");
        seen.sort();
        committed.sort();
        assert_eq!(seen, committed);
    }
}

#[tokio::test]
async fn the_guarded_feed_wants_a_service_token_for_the_producer() {
    let Some(fx) = fixture(souk_chassis::test_util::Backend::Sqlite).await else {
        return;
    };
    let issuer = TestIssuer::start().await;
    let outbox = Outbox::new(fx.db.clone(), "orders");
    let router = outbox.feed_router_with_auth(AuthVerifier::new(issuer.auth_config("orders")));
    let cases = [
        (None, StatusCode::UNAUTHORIZED),
        (
            Some(issuer.user_token("u1", "admin")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(issuer.service_token("inventory", "cart")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(issuer.service_token("inventory", "orders")),
            StatusCode::OK,
        ),
    ];
    for (token, expected) in cases {
        let mut request = Request::get("/v1/events");
        if let Some(token) = &token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{token:?}");
    }
}
