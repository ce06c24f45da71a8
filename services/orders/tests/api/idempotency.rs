//! `Idempotency-Key`: a repeat gets the first answer, errors included; another body under the
//! same key is refused; concurrent repeats never run twice; without a key every POST is new.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{checkout_body, spawn};

souk_chassis::backend_tests! { spawn;
    async fn a_repeat_gets_the_first_answer_and_places_nothing_more(app) {
        let shopper = app.shopper(1);
        let (status, headers, first) = app.place(&shopper, Some("checkout-1")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(headers.get("idempotent-replayed").is_none());
        let (status, again_headers, again) = app.place(&shopper, Some("checkout-1")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(again, first);
        assert_eq!(again_headers["location"], headers["location"]);
        assert_eq!(again_headers["idempotent-replayed"], "true");
        // Same body with other spacing and key order is the same request.
        let id: uuid::Uuid = first["id"].as_str().unwrap().parse().unwrap();
        app.settled(&shopper, id).await;
        let (status, _, late) = app.place(&shopper, Some("checkout-1")).await;
        assert_eq!((status, late), (StatusCode::ACCEPTED, first), "replayed after the saga ended too");
        assert_eq!(app.count("orders").await, 1);
        assert_eq!(app.fakes.captures(id), 1);
    }

    async fn keys_belong_to_their_user(app) {
        let (alice, bob) = (app.shopper(1), app.shopper(1));
        let (_, _, a) = app.place(&alice, Some("same-key")).await;
        let (status, _, b) = app.place(&bob, Some("same-key")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_ne!(a["id"], b["id"]);
    }

    async fn errors_are_replayed_too(app) {
        let shopper = app.shopper(1);
        app.fakes.world().carts.clear();
        let (status, _, first) = app.place(&shopper, Some("empty")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(first["type"], "urn:souk:problem:cart-empty");
        app.fakes.add_to_cart(&shopper.user, shopper.product, 1);
        let (status, headers, again) = app.place(&shopper, Some("empty")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(again, first);
        assert_eq!(headers["idempotent-replayed"], "true");
        assert_eq!(app.count("orders").await, 0);
        // A new key is a new request.
        let (status, _, _) = app.place(&shopper, Some("full")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    async fn the_same_key_with_another_body_is_a_422(app) {
        let shopper = app.shopper(1);
        app.place(&shopper, Some("k")).await;
        let mut body = checkout_body(shopper.method);
        body["shipping_address"]["city"] = json!("Paris");
        body["shipping_address"]["country"] = json!("FR");
        let (status, _, problem) = app.place_on(&app.instance().server, &shopper, Some("k"), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["type"], "urn:souk:problem:idempotency-key-reused");
        assert_eq!(app.count("orders").await, 1);
    }

    async fn concurrent_repeats_place_exactly_one_order(app) {
        let shopper = app.shopper(1);
        let body = checkout_body(shopper.method);
        let server = &app.instance().server;
        let attempts = (0..10).map(|_| app.place_on(server, &shopper, Some("race"), &body));
        let answers = futures::future::join_all(attempts).await;
        let mut ids = std::collections::HashSet::new();
        for (status, headers, body) in answers {
            match status {
                StatusCode::ACCEPTED => {
                    ids.insert(body["id"].as_str().unwrap().to_owned());
                }
                StatusCode::CONFLICT => {
                    assert_eq!(body["type"], "urn:souk:problem:request-in-progress");
                    assert_eq!(headers["retry-after"], "1");
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(app.count("orders").await, 1);
        // Once the first is done, everyone gets its answer.
        let (status, _, again) = app.place(&shopper, Some("race")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        if let Some(id) = ids.iter().next() {
            assert_eq!(again["id"], id.as_str());
        }
    }

    async fn without_a_key_every_post_is_a_new_order(app) {
        let shopper = app.shopper(1);
        let first = app.place_ok(&shopper).await;
        let second = app.place_ok(&shopper).await;
        assert_ne!(first, second);
        assert_eq!(app.count("orders").await, 2);
    }

    async fn a_503_is_not_kept_so_the_same_request_can_run_again(app) {
        let shopper = app.shopper(1);
        app.fakes.world().down.insert("catalog");
        let (status, _, _) = app.place_allowing_5xx(&shopper, Some("retry-me")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        app.fakes.world().down.clear();
        let (status, headers, body) = app.place(&shopper, Some("retry-me")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(headers.get("idempotent-replayed").is_none());
        assert_eq!(app.count("orders").await, 1);
    }

    async fn old_keys_are_purged(app) {
        let shopper = app.shopper(1);
        app.place(&shopper, Some("old")).await;
        let store = &app.instance().orders.store;
        let now = souk_orders::domain::Timestamp::now();
        assert_eq!(store.purge_keys(now.minus(std::time::Duration::from_secs(3600))).await.unwrap(), 0);
        assert_eq!(store.purge_keys(now.plus(std::time::Duration::from_secs(1))).await.unwrap(), 1);
        assert_eq!(app.count("idempotency_keys").await, 0);
    }
}
