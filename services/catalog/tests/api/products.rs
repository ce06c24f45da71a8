//! Listing, paging, filtering and fetching products and categories.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{names, spawn};

souk_chassis::backend_tests! { spawn;

    async fn the_first_page_has_twenty_products_by_name_and_a_cursor(app) {
        let (status, page) = app.get("/v1/products").await;
        assert_eq!(status, StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 20);
        let got = names(items);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted);
        assert!(page["next_cursor"].is_string());
    }

    async fn paging_visits_every_product_once_in_order(app) {
        for limit in [7, 100] {
            let all = app.all_products("", limit).await;
            assert_eq!(all.len(), 220, "limit {limit}");
            let ids: HashSet<_> = all.iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
            assert_eq!(ids.len(), 220);
            let got = names(&all);
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(got, sorted);
        }
    }

    async fn the_category_filter_keeps_one_category(app) {
        let kitchen = app.all_products("&category=kitchen", 5).await;
        assert_eq!(kitchen.len(), 22);
        assert!(kitchen.iter().all(|p| p["category"] == "kitchen"));
        let (status, page) = app.get("/v1/products?category=no-such-category").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["items"].as_array().unwrap().len(), 0);
        assert!(page["next_cursor"].is_null());
    }

    async fn a_product_has_the_documented_shape(app) {
        let (_, page) = app.get("/v1/products?limit=1").await;
        let first = &page["items"][0];
        let id = first["id"].as_str().unwrap();
        let (status, product) = app.get(&format!("/v1/products/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&product, first);
        for field in ["id", "sku", "name", "description", "category", "image_url"] {
            assert!(product[field].is_string(), "{field} in {product}");
        }
        assert!(product["price"]["amount"].is_i64());
        assert_eq!(product["price"]["currency"], "USD");
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
        assert!(product["image_url"].as_str().unwrap().starts_with("/assets/products/"));
    }

    async fn ids_fetch_several_products_at_once_and_leave_out_unknown_ones(app) {
        let (_, page) = app.get("/v1/products?limit=3").await;
        let mut ids: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        ids.push(uuid::Uuid::now_v7().to_string());
        let (status, found) = app.get(&format!("/v1/products?ids={}", ids.join(","))).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["items"], page["items"]);
        assert!(found["next_cursor"].is_null());

        let (status, problem) = app.get("/v1/products?ids=nope").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "ids");
        let many = vec![ids[0].clone(); 101].join(",");
        let (status, _) = app.get(&format!("/v1/products?ids={many}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = app.get("/v1/products?ids=").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "ids names 1 to 100 products");
    }

    async fn ids_combine_with_the_other_filters_and_paging(app) {
        let (_, page) = app.get("/v1/products?limit=5").await;
        let items = page["items"].as_array().unwrap();
        let ids: Vec<&str> = items.iter().map(|p| p["id"].as_str().unwrap()).collect();
        let ids = ids.join(",");
        // A category narrows the named products to those in it.
        let category = items[0]["category"].as_str().unwrap();
        let (status, found) = app.get(&format!("/v1/products?ids={ids}&category={category}")).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        let expected: Vec<&Value> = items.iter().filter(|p| p["category"] == category).collect();
        assert_eq!(found["items"].as_array().unwrap().iter().collect::<Vec<_>>(), expected);
        // A search narrows them to those that match: the first one's own name matches it.
        let word = items[0]["name"].as_str().unwrap().split_whitespace().next().unwrap();
        let (status, found) = app.get(&format!("/v1/products?ids={ids}&q={word}")).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        let found = found["items"].as_array().unwrap();
        assert!(found.iter().any(|p| p["id"] == items[0]["id"]), "{found:?}");
        assert!(found.iter().all(|p| ids.contains(p["id"].as_str().unwrap())));
        // A limit pages through them.
        let (_, first) = app.get(&format!("/v1/products?ids={ids}&limit=2")).await;
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        let cursor = first["next_cursor"].as_str().unwrap();
        let (_, rest) = app.get(&format!("/v1/products?ids={ids}&limit=10&cursor={cursor}")).await;
        assert_eq!(rest["items"].as_array().unwrap().len(), 3);
        assert!(rest["next_cursor"].is_null());
    }

    async fn an_unknown_product_is_a_problem_404(app) {
        let (status, problem) = app.get(&format!("/v1/products/{}", uuid::Uuid::now_v7())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["type"], "urn:souk:problem:not-found");
    }

    async fn categories_are_listed_with_their_counts(app) {
        let (status, list) = app.get("/v1/categories").await;
        assert_eq!(status, StatusCode::OK);
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 10);
        assert_eq!(items[0]["slug"], "kitchen");
        let total: i64 = items.iter().map(|c| c["product_count"].as_i64().unwrap()).sum();
        assert_eq!(total, 220);
        assert!(items.iter().all(|c| c["name"].is_string() && c["description"].is_string()));
    }
}
