//! Full-text search: matching, ranking, paging, and text that is syntax to the engines.

use std::collections::HashSet;

use reqwest::StatusCode;

use crate::helpers::{names, spawn};

fn mentions(product: &serde_json::Value, prefix: &str) -> bool {
    let text = format!("{} {}", product["name"], product["description"]).to_lowercase();
    text.split(|c: char| !c.is_alphanumeric())
        .any(|word| word.starts_with(prefix))
}

souk_chassis::backend_tests! { spawn;

    async fn every_result_mentions_every_word(app) {
        let results = app.all_products("&q=stainless%20steel", 100).await;
        assert!(results.len() >= 3, "{:?}", names(&results));
        for product in &results {
            assert!(mentions(product, "stainless") && mentions(product, "steel"), "{product}");
        }
    }

    async fn words_match_as_prefixes(app) {
        let (_, page) = app.get("/v1/products?q=wirel").await;
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty());
        assert!(items.iter().all(|p| mentions(p, "wirel")));
    }

    async fn name_matches_rank_first(app) {
        let (_, page) = app.get("/v1/products?q=skillet").await;
        let first = page["items"][0]["name"].as_str().unwrap().to_lowercase();
        assert!(first.contains("skillet"), "{first}");
    }

    async fn search_pages_do_not_overlap(app) {
        let paged = app.all_products("&q=cotton", 3).await;
        let whole = app.all_products("&q=cotton", 100).await;
        assert!(whole.len() > 3, "need several pages, got {}", whole.len());
        assert_eq!(names(&paged), names(&whole));
        let ids: HashSet<_> = paged.iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), paged.len());
    }

    async fn search_combines_with_the_category_filter(app) {
        let results = app.all_products("&q=organic&category=beauty", 100).await;
        assert!(!results.is_empty());
        assert!(results.iter().all(|p| p["category"] == "beauty" && mentions(p, "organic")));
    }

    async fn engine_syntax_in_queries_is_only_text(app) {
        let hostile = [
            "\"", "*", "NEAR(a b)", "a OR b", "name:steel", "'); DROP TABLE products;--", "!!!", "steel & | !",
            "(((", "\u{0}", "%", "_", "İstanbul", "日本", "steel:*",
        ];
        for q in hostile {
            let response = app.server.client.get(app.server.url("/v1/products")).query(&[("q", q)]).send().await.unwrap();
            let (status, body) = crate::helpers::read_json(response).await;
            assert_eq!(status, StatusCode::OK, "q={q:?}: {body}");
        }
        let (_, everything) = app.get("/v1/products?limit=1").await;
        assert_eq!(everything["items"].as_array().unwrap().len(), 1, "the catalog is intact");
    }

    async fn a_query_of_no_words_finds_nothing(app) {
        let (status, page) = app.get("/v1/products?q=%21%21%21").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page["items"].as_array().unwrap().is_empty());
    }
}
