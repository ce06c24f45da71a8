//! Spawns the catalog on a random port with its own database, and reads its answers.

use reqwest::StatusCode;
use serde_json::Value;
use souk_catalog::Config;
pub use souk_chassis::test_util::read_json;
use souk_chassis::test_util::{Backend, TestDatabase, TestServer, init_test_logging};

/// A running catalog, the database behind it, and the key its tokens are signed with.
pub struct TestApp {
    pub server: TestServer,
    pub db: TestDatabase,
    pub issuer: crate::admin::Issuer,
}

/// A catalog with the demo data, or `None` when `backend` is not configured here.
pub async fn spawn(backend: Backend) -> Option<TestApp> {
    init_test_logging();
    let db = TestDatabase::create(backend).await?;
    let issuer = crate::admin::Issuer::start().await;
    let config = Config {
        database: db.config.clone(),
        auth: issuer.auth_config(),
        ..Config::default()
    };
    let catalog = souk_catalog::build(&config)
        .await
        .expect("the catalog starts");
    Some(TestApp {
        server: TestServer::spawn(catalog.router).await,
        db,
        issuer,
    })
}

impl TestApp {
    /// GET `path`, returning the status and the JSON body (problem bodies included).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .server
            .client
            .get(self.server.url(path))
            .send()
            .await
            .expect("request sent");
        read_json(response).await
    }

    /// Every product, following cursors at `limit` per page.
    pub async fn all_products(&self, query: &str, limit: u32) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut path = format!("/v1/products?limit={limit}{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = self.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
        panic!("paging did not end");
    }
}

/// The product names of a page or list.
pub fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect()
}
