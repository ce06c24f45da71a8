//! Every cart endpoint needs a user token, and a token reaches its own user's cart only.

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{ids, spawn};

cart_tests! { spawn;

    async fn another_user_sees_and_changes_only_their_own_cart(app) {
        let (mug, pan) = (app.catalog.add(100), app.catalog.add(200));
        app.set(mug, 1).await;
        app.set(pan, 1).await;
        let other = app.new_user();
        assert_eq!(app.cart_of(&other).await["items"], json!([]));
        // The other user clears "their" cart and deletes the same product: ours is untouched.
        let (status, _) = app.call(Method::DELETE, "/v1/cart", Some(&other), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let path = format!("/v1/cart/items/{mug}");
        let (status, _) = app.call(Method::DELETE, &path, Some(&other), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        app.set_as(&other, pan, json!({ "quantity": 9 })).await;
        let ours = app.cart().await;
        assert_eq!(ids(&ours), [mug, pan]);
        assert_eq!(ours["items"][1]["quantity"], 1);
        assert_eq!(ids(&app.cart_of(&other).await), [pan]);
    }

    async fn no_token_or_a_bad_one_is_401(app) {
        let item = format!("/v1/cart/items/{}", Uuid::now_v7());
        let wrong_audience = app.issuer.token("someone", "user", "elsewhere");
        let requests = [
            (Method::GET, "/v1/cart"),
            (Method::DELETE, "/v1/cart"),
            (Method::PUT, item.as_str()),
            (Method::DELETE, item.as_str()),
        ];
        for (method, path) in requests {
            for token in [None, Some("garbage"), Some(wrong_audience.as_str())] {
                let mut request = app.server.client.request(method.clone(), app.server.url(path));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.json(&json!({ "quantity": 1 })).send().await.unwrap();
                assert!(response.headers().contains_key("www-authenticate"));
                let (status, problem) = crate::helpers::read_json(response).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} {token:?}: {problem}");
            }
        }
    }
}
