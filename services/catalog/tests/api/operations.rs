//! What operators rely on: health, readiness, metrics, request ids, restarts and parallel starts.

use reqwest::StatusCode;
use souk_catalog::Config;

use crate::helpers::spawn;

souk_chassis::backend_tests! { spawn;

    async fn health_and_readiness_answer(app) {
        let (status, body) = app.get("/healthz").await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
        let (status, body) = app.get("/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["checks"][0]["name"], "database");
        assert_eq!(body["checks"][0]["ok"], true);
    }

    async fn metrics_label_requests_by_route(app) {
        let (_, page) = app.get("/v1/products?limit=1").await;
        let id = page["items"][0]["id"].as_str().unwrap();
        app.get(&format!("/v1/products/{id}")).await;
        let text = app.server.client.get(app.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(text.contains(r#"route="/v1/products/{id}""#), "{text}");
        assert!(!text.contains(id), "ids must not become labels");
    }

    async fn every_response_carries_a_request_id(app) {
        let response = app.server.client.get(app.server.url("/v1/categories")).send().await.unwrap();
        assert!(response.headers().contains_key("x-request-id"));
        let response = app.server.client.get(app.server.url("/v1/products/nope")).header("x-request-id", "trace-me").send().await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "trace-me");
    }

    async fn a_restart_keeps_the_catalog_and_adds_no_duplicates(app) {
        let config = Config { database: app.db.config.clone(), ..Config::default() };
        let again = souk_catalog::build(&config).await.unwrap();
        let server = souk_chassis::test_util::TestServer::spawn(again.router).await;
        let (_, cats) = crate::helpers::read_json(server.client.get(server.url("/v1/categories")).send().await.unwrap()).await;
        let total: i64 = cats["items"].as_array().unwrap().iter().map(|c| c["product_count"].as_i64().unwrap()).sum();
        assert_eq!(total, 220);
    }

    async fn instances_starting_together_seed_once(app) {
        // A fresh database, opened by three instances at the same moment.
        let Some(db) = souk_chassis::test_util::TestDatabase::create(backend_of(&app)).await else { return };
        let config = Config { database: db.config.clone(), ..Config::default() };
        let starts = (0..3).map(|_| souk_catalog::build(&config));
        let built = futures_join(starts).await;
        let catalog = built.into_iter().next().unwrap();
        let server = souk_chassis::test_util::TestServer::spawn(catalog.router).await;
        let (_, cats) = crate::helpers::read_json(server.client.get(server.url("/v1/categories")).send().await.unwrap()).await;
        let total: i64 = cats["items"].as_array().unwrap().iter().map(|c| c["product_count"].as_i64().unwrap()).sum();
        assert_eq!(total, 220);
    }
}

fn backend_of(app: &crate::helpers::TestApp) -> souk_chassis::test_util::Backend {
    if app.db.config.url.expose().starts_with("sqlite") {
        souk_chassis::test_util::Backend::Sqlite
    } else {
        souk_chassis::test_util::Backend::Postgres
    }
}

async fn futures_join<F, T, E>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::new();
    for result in futures::future::join_all(handles).await {
        out.push(result.expect("every instance starts"));
    }
    out
}
