//! What operators rely on: health, readiness, metrics, restarts.

use reqwest::StatusCode;
use souk_inventory::Config;

use crate::helpers::{line, spawn};

souk_chassis::backend_tests! { spawn;

    async fn health_and_readiness_answer(app) {
        let (status, body) = app.get("/healthz").await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
        let (status, body) = app.readiness().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let checks: Vec<_> = body["checks"].as_array().unwrap().iter().map(|c| (c["name"].as_str().unwrap(), c["ok"].as_bool().unwrap())).collect();
        assert_eq!(checks, [("database", true), ("catalog", true)], "ready: the catalog's products are known");
    }

    async fn metrics_label_requests_by_route(app) {
        let (id, _) = app.product(0);
        app.get(&format!("/v1/availability/{id}")).await;
        let text = app.server.client.get(app.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(text.contains(r#"route="/v1/availability/{product_id}""#), "{text}");
        assert!(!text.contains(&id.to_string()), "ids must not become labels");
    }

    async fn a_restart_keeps_stock_and_reservations(app) {
        let product = app.new_product(5).await;
        let order = uuid::Uuid::now_v7();
        app.reserve(order, vec![line(product, 2)]).await;
        let config = Config { database: app.db.config.clone(), catalog_sync_secs: 0, expiry_interval_ms: 0, ..Config::default() };
        let again = souk_inventory::build(&config).await.unwrap();
        let stock = again.store.stock(product).await.unwrap().unwrap();
        assert_eq!((stock.available, stock.reserved), (3, 2));
        assert!(again.store.reservation(order).await.unwrap().is_some());
    }
}
