//! Public availability: one product, several at once, unknown and malformed ids.

use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{demo_quantities, spawn};

souk_chassis::backend_tests! { spawn;

    async fn a_product_shows_its_demo_quantity_without_a_token(app) {
        let demo = demo_quantities();
        for n in [0, 1, 120] {
            let (id, sku) = app.product(n);
            let (status, body) = app.get(&format!("/v1/availability/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["product_id"], id.to_string());
            assert_eq!(body["sku"], sku.as_str());
            assert_eq!(body["quantity"], demo[&sku]);
            assert_eq!(body["in_stock"], demo[&sku] > 0);
        }
    }

    async fn sold_out_products_are_not_in_stock(app) {
        let (id, sku) = app.product(3);
        app.set_stock(&sku, 0).await;
        let (_, body) = app.get(&format!("/v1/availability/{id}")).await;
        assert_eq!(body["in_stock"], false);
        assert_eq!(body["quantity"], 0);
    }

    async fn unknown_products_are_404_and_malformed_ids_400(app) {
        let (status, problem) = app.get(&format!("/v1/availability/{}", Uuid::now_v7())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["type"], "urn:souk:problem:not-found");
        for id in ["abc", "1", "00000000-0000-0000-0000-00000000000g"] {
            let (status, _) = app.get(&format!("/v1/availability/{id}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{id}");
        }
    }

    async fn several_products_answer_in_the_order_asked_without_unknown_ones(app) {
        let (a, _) = app.product(10);
        let (b, _) = app.product(140);
        let unknown = Uuid::now_v7();
        let (status, body) = app.get(&format!("/v1/availability?ids={b},{unknown},{a},{b}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ids: Vec<&str> = body["items"].as_array().unwrap().iter().map(|i| i["product_id"].as_str().unwrap()).collect();
        assert_eq!(ids, [b.to_string(), a.to_string()]);
    }

    async fn the_list_takes_1_to_100_well_formed_ids(app) {
        let many: Vec<String> = (0..101).map(|_| Uuid::now_v7().to_string()).collect();
        for query in ["", "?ids=", "?ids=nope", &format!("?ids={}", many.join(","))] {
            let (status, problem) = app.get(&format!("/v1/availability{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
            assert_eq!(problem["errors"][0]["field"], "ids");
        }
        let (status, body) = app.get(&format!("/v1/availability?ids={}", many[..100].join(","))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["items"].as_array().unwrap().len(), 0);
    }
}
