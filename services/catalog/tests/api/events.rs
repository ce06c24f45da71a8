//! Product events: every change of a product appends its event in the transaction that makes
//! the change — so a refused write leaves none, and one write leaves exactly one — and the
//! catalog serves them in order on its internal feed, to services whose token names it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin::{product, send};
use crate::helpers::{TestApp, read_json, spawn};

/// The catalog's feed after `after`: every event there is now (no waiting).
async fn feed(app: &TestApp, after: i64) -> Vec<Value> {
    let token = app.issuer.token("service:inventory", "service", "catalog");
    let mut events = Vec::new();
    let mut after = after;
    loop {
        let path = format!("/v1/events?after={after}&limit=500");
        let response = app
            .server
            .client
            .get(app.server.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (status, page) = read_json(response).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["events"].as_array().unwrap().clone();
        if items.is_empty() {
            return events;
        }
        after = page["next"].as_i64().unwrap();
        events.extend(items);
    }
}

/// Where the feed ends now.
async fn end_of_feed(app: &TestApp) -> i64 {
    feed(app, 0)
        .await
        .last()
        .map_or(0, |e| e["seq"].as_i64().unwrap())
}

fn admin(app: &TestApp) -> String {
    app.issuer.token("admin-1", "admin", "souk")
}

souk_chassis::backend_tests! { spawn;

    async fn the_demo_catalog_is_loaded_without_events(app) {
        assert_eq!(feed(&app, 0).await, Vec::<Value>::new(), "consumers learn it from the list");
        assert_eq!(app.all_products("", 100).await.len(), 220);
    }

    async fn every_change_an_administrator_makes_is_an_event_in_order(app) {
        let admin = admin(&app);
        let start = end_of_feed(&app).await;
        let (status, created) = send(&app, Method::POST, "/v1/admin/products", Some(&admin), Some(&product())).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let mut changed = product();
        changed["sku"] = json!("KIT-0998");
        changed["price"]["amount"] = json!(6100);
        let path = format!("/v1/admin/products/{id}");
        let (status, updated) = send(&app, Method::PUT, &path, Some(&admin), Some(&changed)).await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        let (status, _) = send(&app, Method::DELETE, &path, Some(&admin), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        let events: Vec<Value> = feed(&app, start).await.into_iter().map(|e| e["event"].clone()).collect();
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, [
            "souk.catalog.product_created.v1",
            "souk.catalog.product_updated.v1",
            "souk.catalog.product_deleted.v1",
        ]);
        assert!(events.iter().all(|e| e["subject"] == id.as_str()), "{events:?}");
        assert_eq!(events[0]["data"], created, "the product as created");
        assert_eq!(events[1]["data"], updated, "the product as it now is, new SKU included");
        assert_eq!(events[2]["data"], json!({ "id": id, "sku": "KIT-0998" }));
    }

    async fn a_refused_write_leaves_no_event_and_one_write_leaves_one(app) {
        let admin = admin(&app);
        let start = end_of_feed(&app).await;
        // Ten administrators add the same SKU at once: one product, one event.
        let body = product();
        let attempts = (0..10).map(|_| send(&app, Method::POST, "/v1/admin/products", Some(&admin), Some(&body)));
        let statuses: Vec<StatusCode> = futures::future::join_all(attempts).await.into_iter().map(|(s, _)| s).collect();
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 9, "{statuses:?}");
        let after_race = feed(&app, start).await;
        assert_eq!(after_race.len(), 1, "{after_race:?}");
        let position = after_race[0]["seq"].as_i64().unwrap();

        // Refused by the database inside the write's transaction, or before it.
        let (_, page) = app.get("/v1/products?limit=2").await;
        let existing = page["items"][0]["id"].as_str().unwrap().to_owned();
        let taken = page["items"][1]["sku"].as_str().unwrap().to_owned();
        let mut unknown_category = product();
        unknown_category["sku"] = json!("KIT-0997");
        unknown_category["category"] = json!("no-such-category");
        let mut taken_sku = product();
        taken_sku["sku"] = json!(taken);
        let nowhere = format!("/v1/admin/products/{}", uuid::Uuid::now_v7());
        let refused = [
            (Method::POST, "/v1/admin/products".to_owned(), Some(unknown_category), StatusCode::UNPROCESSABLE_ENTITY),
            (Method::PUT, format!("/v1/admin/products/{existing}"), Some(taken_sku), StatusCode::CONFLICT),
            (Method::PUT, nowhere.clone(), Some(product()), StatusCode::NOT_FOUND),
            (Method::DELETE, nowhere, None, StatusCode::NOT_FOUND),
        ];
        for (method, path, body, expected) in refused {
            let (status, problem) = send(&app, method.clone(), &path, Some(&admin), body.as_ref()).await;
            assert_eq!(status, expected, "{method} {path}: {problem}");
        }
        assert_eq!(feed(&app, position).await, Vec::<Value>::new(), "no event without its change");
        let (_, still) = app.get(&format!("/v1/products/{existing}")).await;
        assert_ne!(still["sku"], json!(taken), "and no change without its event");
    }

    async fn the_feed_is_for_services_whose_token_names_the_catalog(app) {
        let url = app.server.url("/v1/events?after=0&limit=1");
        let status = |token: Option<String>| {
            let mut request = app.server.client.get(&url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move { request.send().await.unwrap().status() }
        };
        assert_eq!(status(None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(Some(app.issuer.token("user-1", "user", "souk"))).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(Some(app.issuer.token("admin-1", "admin", "catalog"))).await, StatusCode::FORBIDDEN);
        assert_eq!(status(Some(app.issuer.token("service:cart", "service", "orders"))).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(Some(app.issuer.token("service:inventory", "service", "catalog"))).await, StatusCode::OK);
    }
}
