//! Setting, reading, removing and clearing lines.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ids, spawn};

cart_tests! { spawn;

    async fn a_new_cart_is_empty_with_no_total(app) {
        let cart = app.cart().await;
        assert_eq!(cart, json!({ "items": [], "total": null, "degraded": [] }));
    }

    async fn a_line_is_set_and_answered_priced(app) {
        let mug = app.catalog.add(1250);
        let (status, cart) = app.set(mug, 2).await;
        assert_eq!(status, StatusCode::OK, "{cart}");
        assert_eq!(cart, json!({
            "items": [{
                "product_id": mug, "name": format!("Product {mug}"), "quantity": 2,
                "unit_price": { "amount": 1250, "currency": "USD" },
                "line_total": { "amount": 2500, "currency": "USD" },
                "status": "ok",
            }],
            "total": { "amount": 2500, "currency": "USD" },
            "degraded": [],
        }));
        assert_eq!(app.cart().await, cart);
    }

    async fn setting_a_line_again_replaces_its_quantity(app) {
        let mug = app.catalog.add(300);
        app.set(mug, 2).await;
        let (_, cart) = app.set(mug, 7).await;
        assert_eq!(cart["items"].as_array().unwrap().len(), 1);
        assert_eq!(cart["items"][0]["quantity"], 7);
        assert_eq!(cart["total"]["amount"], 2100);
    }

    async fn lines_keep_the_order_they_were_first_added(app) {
        let products: Vec<_> = (0..6).map(|i| app.catalog.add(100 + i)).collect();
        for &product in &products {
            assert_eq!(app.set(product, 1).await.0, StatusCode::OK);
        }
        // Changing a quantity keeps the line in place; removing and adding again moves it last.
        app.set(products[0], 5).await;
        app.set(products[2], 0).await;
        app.set(products[2], 1).await;
        let expected = [0, 1, 3, 4, 5, 2].map(|i| products[i]);
        assert_eq!(ids(&app.cart().await), expected);
    }

    async fn quantity_zero_removes_the_line(app) {
        let (mug, pan) = (app.catalog.add(100), app.catalog.add(200));
        app.set(mug, 1).await;
        app.set(pan, 1).await;
        let (status, cart) = app.set(mug, 0).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids(&cart), [pan]);
        // Removing what is not there is not an error.
        assert_eq!(app.set(mug, 0).await.0, StatusCode::OK);
    }

    async fn delete_removes_one_line_and_is_idempotent(app) {
        let (mug, pan) = (app.catalog.add(100), app.catalog.add(200));
        app.set(mug, 1).await;
        app.set(pan, 3).await;
        let path = format!("/v1/cart/items/{mug}");
        for _ in 0..2 {
            let (status, body) = app.call(Method::DELETE, &path, Some(&app.token), None).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            assert!(body.is_null());
        }
        let cart = app.cart().await;
        assert_eq!(ids(&cart), [pan]);
        assert_eq!(cart["total"]["amount"], 600);
    }

    async fn delete_empties_the_cart_which_can_be_filled_again(app) {
        let (mug, pan) = (app.catalog.add(100), app.catalog.add(200));
        app.set(mug, 1).await;
        app.set(pan, 1).await;
        let (status, _) = app.call(Method::DELETE, "/v1/cart", Some(&app.token), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(app.cart().await["items"], json!([]));
        let (status, _) = app.call(Method::DELETE, "/v1/cart", Some(&app.token), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(ids(&app.set(pan, 1).await.1), [pan]);
    }
}
