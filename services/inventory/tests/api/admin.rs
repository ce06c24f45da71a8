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
        for (who, token, expected) in [
            ("anonymous", None, StatusCode::UNAUTHORIZED),
            ("a user", Some(user.as_str()), StatusCode::FORBIDDEN),
        ] {
            let (status, problem) = app.send(Method::GET, &path, token, None).await;
            assert_eq!(status, expected, "GET by {who}: {problem}");
            let (status, problem) = app.send(Method::POST, &format!("{path}/adjustments"), token, Some(&json!({ "delta": 1, "reason": "x" }))).await;
            assert_eq!(status, expected, "adjustment by {who}: {problem}");
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
        let (_, _, etag) = app.admin_stock(&sku).await;
        for quantity in [json!(-1), json!(1_000_001)] {
            let (status, _, problem) = app.send_with(Method::PUT, &format!("/v1/admin/stock/{sku}"), Some(&app.admin()), &[("if-match", &etag)], Some(&json!({ "quantity": quantity }))).await;
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

    // Issue 16: an administrator who read 10 while a shopper reserved 3, writing 15 to record
    // 5 units received, would have made 3 units out of thin air. The write names the version
    // read, and a reservation since then makes it a 412.
    async fn a_count_from_a_stale_reading_is_refused(app) {
        let (id, sku) = app.product(3);
        app.set_stock(&sku, 10).await;
        let (status, read, etag) = app.admin_stock(&sku).await;
        assert_eq!((status, read["available"].as_i64()), (StatusCode::OK, Some(10)));
        assert_eq!(etag, format!("\"{}\"", read["version"]));
        assert_eq!(app.reserve(uuid::Uuid::now_v7(), vec![line(id, 3)]).await.0, StatusCode::CREATED);
        let (status, headers, problem) = app.set_stock_if(&sku, 15, &etag).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:stale-stock");
        assert_eq!(problem["stock"]["available"], 7);
        let current = headers["etag"].to_str().unwrap().to_owned();
        assert_ne!(current, etag);
        let stock = app.stock(id).await;
        assert_eq!((stock.available, stock.reserved, stock.received), (7, 3, 10), "nothing set");
        // Read again, decide anew: five received on top of the seven on sale.
        let (status, _, now) = app.set_stock_if(&sku, 12, &current).await;
        assert_eq!(status, StatusCode::OK, "{now}");
        let stock = app.stock(id).await;
        assert_eq!((stock.available, stock.reserved, stock.received), (12, 3, 15));
        app.assert_consistent().await;
    }

    async fn a_set_without_a_version_is_428_and_a_foreign_tag_412(app) {
        let (_, sku) = app.product(4);
        let path = format!("/v1/admin/stock/{sku}");
        let body = json!({ "quantity": 5 });
        for headers in [vec![], vec![("if-match", "*")]] {
            let (status, _, problem) = app.send_with(Method::PUT, &path, Some(&app.admin()), &headers, Some(&body)).await;
            assert_eq!(status, StatusCode::PRECONDITION_REQUIRED, "{headers:?}: {problem}");
            assert_eq!(problem["type"], "urn:souk:problem:precondition-required");
        }
        for tag in ["W/\"1\"", "\"-5\""] {
            let (status, _, problem) = app.set_stock_if(&sku, 5, tag).await;
            assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{tag}: {problem}");
        }
        // Not an entity tag at all: a malformed header, not a version that moved on.
        let (status, _, problem) = app.set_stock_if(&sku, 5, "garbage").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    }

    async fn adjustments_move_what_is_on_sale_and_what_was_received_together(app) {
        let (id, sku) = app.product(5);
        app.set_stock(&sku, 4).await;
        let order = uuid::Uuid::now_v7();
        assert_eq!(app.reserve(order, vec![line(id, 3)]).await.0, StatusCode::CREATED);
        let (status, received) = app.adjust(&sku, 5, None).await;
        assert_eq!(status, StatusCode::CREATED, "{received}");
        assert_eq!((received["delta"].as_i64(), received["stock"]["available"].as_i64()), (Some(5), Some(6)));
        assert_eq!(received["stock"]["received"], 9);
        // A write-off takes only units on sale: the held ones are not the administrator's.
        let (status, problem) = app.adjust(&sku, -7, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:insufficient-stock");
        assert_eq!(problem["stock"]["available"], 6);
        let (status, written_off) = app.adjust(&sku, -6, Some("damage-1")).await;
        assert_eq!(status, StatusCode::CREATED, "{written_off}");
        let (status, again) = app.adjust(&sku, -6, Some("damage-1")).await;
        assert_eq!((status, &again["id"]), (StatusCode::OK, &written_off["id"]), "a repeat answers the first");
        let (status, problem) = app.adjust(&sku, -1, Some("damage-1")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:idempotency-key-reused");
        let stock = app.stock(id).await;
        assert_eq!((stock.available, stock.reserved, stock.sold, stock.received), (0, 3, 0, 3));
        assert_eq!(app.commit(order).await.0, StatusCode::OK, "the hold was never touched");
        for body in [json!({ "delta": 0, "reason": "x" }), json!({ "delta": 1_000_001, "reason": "x" }), json!({ "delta": 1, "reason": " " }), json!({ "delta": 1, "reason": "a\u{7}b" }), json!({ "delta": 1 })] {
            let (status, _) = app.send(Method::POST, &format!("/v1/admin/stock/{sku}/adjustments"), Some(&app.admin()), Some(&body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }
        app.assert_consistent().await;
    }
}
