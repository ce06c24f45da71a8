//! Lists: the caller's own purchases only, newest first, in pages that neither skip nor repeat.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::fixtures::{placed, placed_at};
use crate::helpers::spawn;

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|p| p["order_id"].as_str().unwrap().to_owned())
        .collect()
}

souk_chassis::backend_tests! { spawn;

    async fn pages_are_newest_first_and_neither_skip_nor_repeat(app) {
        // Two purchases per minute: ties on the time are broken by the order id, newest first.
        let mut alice = Vec::new();
        let mut events = Vec::new();
        for i in 0..25 {
            let order = Uuid::now_v7();
            let at = format!("2026-11-30T10:{:02}:00.000Z", i / 2);
            events.push(placed_at(order, "alice", &at));
            alice.push((at, order.to_string()));
        }
        events.push(placed(Uuid::now_v7(), "bob"));
        events.push(placed(Uuid::now_v7(), "bob"));
        for event in &events {
            app.orders.publish(event).await;
        }
        app.wait_handled(&events.iter().collect::<Vec<_>>()).await;
        alice.sort();
        alice.reverse();
        let expected: Vec<String> = alice.into_iter().map(|(_, id)| id).collect();

        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut path = "/v1/history?limit=10".to_owned();
        loop {
            let page = app.get_ok(&path, "alice").await;
            let items = page["items"].as_array().unwrap();
            sizes.push(items.len());
            seen.extend(ids(items));
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/history?limit=10&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!(seen, expected);

        let first = app.get_ok("/v1/history", "alice").await;
        assert_eq!(first["items"].as_array().unwrap().len(), 20, "20 by default");
        assert!(first["next_cursor"].is_string());
        assert_eq!(app.history_of("bob").await.len(), 2);
    }

    async fn nobody_sees_another_users_purchase(app) {
        let (mine, theirs) = (Uuid::now_v7(), Uuid::now_v7());
        let events = [placed(mine, "alice"), placed(theirs, "bob")];
        for event in &events {
            app.deliver(event).await;
        }
        assert_eq!(ids(&app.history_of("alice").await), [mine.to_string()]);
        assert_eq!(ids(&app.history_of("bob").await), [theirs.to_string()]);
        assert!(app.history_of("carol").await.is_empty());
        let (status, problem) = app.send(Method::GET, &format!("/v1/history/{theirs}"), Some(&app.user("alice"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "never 403: {problem}");
        let (status, _) = app.send(Method::GET, &format!("/v1/history/{}", Uuid::now_v7()), Some(&app.user("alice"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A cursor is no way in either: it only moves through the caller's own purchases.
        let bobs = souk_chassis::pagination::encode_cursor(&(i64::MAX, theirs));
        let page = app.get_ok(&format!("/v1/history?cursor={bobs}"), "alice").await;
        assert_eq!(ids(page["items"].as_array().unwrap()), [mine.to_string()]);
    }
}
