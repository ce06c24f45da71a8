//! What each store does beyond the shared behaviour: readiness, and forgetting abandoned carts.

use reqwest::{Method, StatusCode};
use souk_cart::store::Store;

use crate::helpers::{Backend, spawn};

cart_tests! { spawn;

    async fn the_store_is_a_readiness_check(app) {
        let (status, report) = app.call(Method::GET, "/readyz", None, None).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let name = match app.backend {
            Backend::Sqlite => "database",
            Backend::Redis => "redis",
        };
        assert_eq!(report["checks"][0]["name"], name, "{report}");
        assert_eq!(report["checks"][0]["ok"], true);
    }

    async fn abandoned_carts_are_forgotten(app) {
        let mug = app.catalog.add(100);
        app.set(mug, 1).await;
        let user = app.new_user();
        app.set_as(&user, mug, serde_json::json!({ "quantity": 1 })).await;
        match &app.store {
            Store::Sqlite(store) => {
                // Recent carts stay; one untouched for longer than 30 days goes.
                assert_eq!(app.store.purge_abandoned().await.unwrap(), 0);
                let souk_chassis::Database::Sqlite(pool) = store.database() else { panic!() };
                let ages = sqlx::query("UPDATE carts SET touched_at = touched_at - $1 WHERE user_id = $2")
                    .bind(31_i64 * 24 * 3600 * 1000)
                    .bind(&app.user_id)
                    .execute(pool)
                    .await
                    .unwrap();
                assert_eq!(ages.rows_affected(), 1);
                assert_eq!(app.store.purge_abandoned().await.unwrap(), 1);
                assert_eq!(app.cart().await["items"], serde_json::json!([]));
                assert_eq!(app.cart_of(&user).await["items"].as_array().unwrap().len(), 1);
            }
            Store::Redis(_) => {
                // Every write sets the key's TTL to 30 days.
                let url = std::env::var(crate::helpers::REDIS_URL_VAR).unwrap();
                let client = redis::Client::open(url).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}*", app.key_prefix()))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(keys.len(), 2, "{keys:?}");
                for key in keys {
                    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut conn).await.unwrap();
                    assert!((30 * 86_400 - 60..=30 * 86_400).contains(&ttl), "{key}: {ttl}");
                }
            }
        }
    }
}
