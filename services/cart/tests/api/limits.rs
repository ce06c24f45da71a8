//! Quantities are 1..=99 and a cart holds at most 100 products, even under concurrent adds.

use crate::helpers::spawn;
use reqwest::StatusCode;

cart_tests! { spawn;

    async fn quantities_1_to_99_are_accepted_and_others_refused(app) {
        let mug = app.catalog.add(100);
        for quantity in [1, 99] {
            let (status, cart) = app.set(mug, quantity).await;
            assert_eq!(status, StatusCode::OK, "{quantity}: {cart}");
            assert_eq!(cart["items"][0]["quantity"], quantity);
        }
        for quantity in [100, 1000, -1, i64::MIN, i64::MAX] {
            let (status, problem) = app.set(mug, quantity).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{quantity}: {problem}");
            assert_eq!(problem["errors"][0]["field"], "quantity", "{problem}");
        }
        // Not integers, or past what an integer holds: the body does not have the right shape.
        for quantity in ["2.5", "1e30", "18446744073709551616", "-99999999999999999999", "\"2\"", "null"] {
            let body = format!(r#"{{"quantity": {quantity}}}"#);
            let (status, problem) = app.put_raw(mug, &body, "application/json").await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{quantity}: {problem}");
        }
        assert_eq!(app.cart().await["items"][0]["quantity"], 99);
    }

    async fn a_101st_product_is_refused_naming_the_limit(app) {
        let products: Vec<_> = (0..101).map(|_| app.catalog.add(100)).collect();
        for &product in &products[..100] {
            assert_eq!(app.set(product, 1).await.0, StatusCode::OK);
        }
        let (status, problem) = app.set(products[100], 1).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["type"], "urn:souk:problem:cart-full");
        assert!(problem["detail"].as_str().unwrap().contains("100"), "{problem}");
        // Lines already there can still change, and a freed place can be taken.
        assert_eq!(app.set(products[0], 5).await.0, StatusCode::OK);
        app.set(products[1], 0).await;
        let (status, cart) = app.set(products[100], 1).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cart["items"].as_array().unwrap().len(), 100);
        assert_eq!(cart["total"]["amount"], 104 * 100);
    }

    async fn concurrent_adds_never_pass_100_products(app) {
        let products: Vec<_> = (0..130).map(|_| app.catalog.add(100)).collect();
        let adds = products.iter().map(|&product| app.set(product, 1));
        let answers = futures::future::join_all(adds).await;
        let added = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        let full = answers.iter().filter(|(s, p)| {
            *s == StatusCode::UNPROCESSABLE_ENTITY && p["type"] == "urn:souk:problem:cart-full"
        }).count();
        assert_eq!((added, full), (100, 30));
        let cart = app.cart().await;
        assert_eq!(cart["items"].as_array().unwrap().len(), 100);
        assert_eq!(cart["total"]["amount"], 100 * 100);
    }
}
