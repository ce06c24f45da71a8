//! Administrators set the units on sale; nobody else may.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{line, spawn};

souk_chassis::backend_tests! { spawn;

    async fn only_administrators_set_stock(app) {
        let (_, sku) = app.product(0);
        let path = format!("/v1/admin/stock/{sku}");
        let body = json!({ "quantity": 7 });
        let user = app.user();
        let service = app.service();
        for (who, token, expected) in [
            ("anonymous", None, StatusCode::UNAUTHORIZED),
            ("a user", Some(user.as_str()), StatusCode::FORBIDDEN),
            ("a service token", Some(service.as_str()), StatusCode::UNAUTHORIZED),
            ("garbage", Some("x.y.z"), StatusCode::UNAUTHORIZED),
        ] {
            let (status, problem) = app.send(Method::PUT, &path, token, Some(&body)).await;
            assert_eq!(status, expected, "{who}: {problem}");
        }
        let (status, stock) = app.set_stock(&sku, 7).await;
        assert_eq!(status, StatusCode::OK, "{stock}");
        assert_eq!(stock["sku"], sku.as_str());
        assert_eq!(stock["available"], 7);
        assert_eq!((stock["reserved"].as_i64(), stock["sold"].as_i64()), (Some(0), Some(0)));
    }

    async fn setting_stock_moves_what_was_received_and_keeps_holds_and_sales(app) {
        let (id, sku) = app.product(1);
        app.set_stock(&sku, 10).await;
        let (held, sold) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        assert_eq!(app.reserve(held, vec![line(id, 2)]).await.0, StatusCode::CREATED);
        assert_eq!(app.reserve(sold, vec![line(id, 3)]).await.0, StatusCode::CREATED);
        assert_eq!(app.commit(sold).await.0, StatusCode::OK);
        let (status, stock) = app.set_stock(&sku, 20).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((stock["available"].as_i64(), stock["reserved"].as_i64(), stock["sold"].as_i64()), (Some(20), Some(2), Some(3)));
        assert_eq!(app.stock(id).await.received, 25);
        let (_, stock) = app.set_stock(&sku, 0).await;
        assert_eq!(stock["available"], 0);
        assert_eq!(app.stock(id).await.received, 5);
        app.assert_consistent().await;
    }

    async fn quantities_are_0_to_a_million_and_skus_must_exist(app) {
        let (_, sku) = app.product(2);
        for quantity in [json!(-1), json!(1_000_001)] {
            let (status, problem) = app.send(Method::PUT, &format!("/v1/admin/stock/{sku}"), Some(&app.admin()), Some(&json!({ "quantity": quantity }))).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{quantity}");
            assert_eq!(problem["errors"][0]["field"], "quantity");
        }
        for body in [json!({}), json!({ "quantity": "5" }), json!({ "quantity": 1.5 }), json!({ "quantity": 5, "reserved": 1 })] {
            let (status, _) = app.send(Method::PUT, &format!("/v1/admin/stock/{sku}"), Some(&app.admin()), Some(&body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }
        assert_eq!(app.set_stock(&sku, 1_000_000).await.0, StatusCode::OK);
        let (status, problem) = app.set_stock("NO-SUCH-SKU", 5).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    }
}
