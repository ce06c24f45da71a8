//! Hostile and malformed input: always a clear problem+json 4xx, never a 500.

use reqwest::StatusCode;

use crate::helpers::{read_json, spawn};

souk_chassis::backend_tests! { spawn;

    async fn out_of_range_or_malformed_limits_are_400(app) {
        for limit in ["0", "101", "1000000", "-1", "abc", "1e3", "99999999999999999999"] {
            let (status, problem) = app.get(&format!("/v1/products?limit={limit}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "limit={limit}: {problem}");
        }
        let (_, problem) = app.get("/v1/products?limit=0").await;
        assert_eq!(problem["errors"][0]["field"], "limit");
    }

    async fn foreign_or_garbage_cursors_are_400(app) {
        let (_, search_page) = app.get("/v1/products?q=cotton&limit=1").await;
        let search_cursor = search_page["next_cursor"].as_str().unwrap().to_owned();
        for cursor in ["garbage", "%FF%FE", "e30", search_cursor.as_str()] {
            let (status, problem) = app.get(&format!("/v1/products?cursor={cursor}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "cursor={cursor}: {problem}");
            assert_eq!(problem["errors"][0]["field"], "cursor");
        }
    }

    async fn bad_category_slugs_and_overlong_queries_are_400(app) {
        let (status, _) = app.get("/v1/products?category=Kitchen%27%3B").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, problem) = app.get(&format!("/v1/products?q={}", "a".repeat(201))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["field"], "q");
    }

    async fn non_uuid_ids_are_400(app) {
        for id in ["abc", "1", "00000000-0000-0000-0000-00000000000g", &"x".repeat(2000), "%00"] {
            let (status, problem) = app.get(&format!("/v1/products/{id}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{id}: {problem}");
        }
    }

    async fn undeclared_methods_are_405_with_allow(app) {
        let response = app.server.client.delete(app.server.url("/v1/products")).send().await.unwrap();
        assert_eq!(response.headers()["allow"], "GET,HEAD");
        let (status, _) = read_json(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    async fn a_two_mebibyte_body_is_413(app) {
        let body = vec![b'{'; 2 * 1024 * 1024];
        for method in [reqwest::Method::POST, reqwest::Method::GET] {
            let response = app
                .server
                .client
                .request(method.clone(), app.server.url("/v1/products"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let (status, problem) = read_json(response).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{method}: {problem}");
        }
    }

    async fn unknown_paths_are_problem_404s(app) {
        let (status, problem) = app.get("/v1/nothing-here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["title"], "Not Found");
    }
}
