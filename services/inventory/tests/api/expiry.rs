//! Holds that nobody confirms or cancels in time give their units back.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use souk_inventory::domain::{Line, Lines, ReservationState, Timestamp};
use souk_inventory::store::Lapsed;
use uuid::Uuid;

use crate::helpers::{line, spawn, spawn_expiring};

mod by_the_loop {
    use super::*;

    souk_chassis::backend_tests! { spawn_expiring;

        async fn a_lapsed_hold_expires_and_once_released_cannot_be_committed(app) {
            let product = app.new_product(4).await;
            let order = Uuid::now_v7();
            let (status, held) = app.reserve(order, vec![line(product, 3)]).await;
            assert_eq!(status, StatusCode::CREATED, "{held}");
            assert_eq!(app.stock(product).await.available, 1);
            let path = format!("/v1/reservations/{order}");
            let mut state = String::new();
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let (_, body) = app.send(Method::GET, &path, Some(&app.service()), None).await;
                state = body["state"].as_str().unwrap().to_owned();
                if state != "held" {
                    break;
                }
            }
            assert_eq!(state, "expired");
            let stock = app.stock(product).await;
            assert_eq!((stock.available, stock.reserved), (4, 0));
            // The order was cancelled: releasing the lapsed hold makes it final, so a late
            // commit (a stale saga instance) can never take its units again.
            let (status, body) = app.release(order).await;
            assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("released")));
            let (status, problem) = app.commit(order).await;
            assert_eq!(status, StatusCode::CONFLICT);
            assert_eq!(problem["type"], "urn:souk:problem:reservation-state");
            assert_eq!(problem["reservation"]["state"], "released");
            let stock = app.stock(product).await;
            assert_eq!((stock.available, stock.sold), (4, 0));
        }
    }
}

souk_chassis::backend_tests! { spawn;

    async fn expiry_takes_only_lapsed_holds_once(app) {
        let store = &app.inventory.store;
        let product = app.new_product(10).await;
        let lines = Lines::new(vec![Line { product_id: product, quantity: 2 }]).unwrap();
        let t = Timestamp::now();
        let (early, late, sold) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        store.reserve(early, &lines, Timestamp::from_millis(t.millis() + 100), t).await.unwrap();
        store.reserve(late, &lines, Timestamp::from_millis(t.millis() + 10_000), t).await.unwrap();
        store.reserve(sold, &lines, Timestamp::from_millis(t.millis() + 100), t).await.unwrap();
        store.commit(sold, t, Lapsed::TakeAgain).await.unwrap();
        assert_eq!(store.expire_due(Timestamp::from_millis(t.millis() + 99), 100).await.unwrap(), 0);
        assert_eq!(store.expire_due(Timestamp::from_millis(t.millis() + 100), 100).await.unwrap(), 1);
        assert_eq!(store.expire_due(Timestamp::from_millis(t.millis() + 5000), 100).await.unwrap(), 0);
        assert_eq!(store.reservation(early).await.unwrap().unwrap().state, ReservationState::Expired);
        assert_eq!(store.reservation(late).await.unwrap().unwrap().state, ReservationState::Held);
        let stock = app.stock(product).await;
        assert_eq!((stock.available, stock.reserved, stock.sold), (6, 2, 2));
    }

    async fn committing_a_lapsed_hold_whose_units_were_sold_is_refused_out_of_stock(app) {
        let product = app.new_product(3).await;
        let (late, other) = (Uuid::now_v7(), Uuid::now_v7());
        let lines = Lines::new(vec![Line { product_id: product, quantity: 3 }]).unwrap();
        let past = Timestamp::from_millis(Timestamp::now().millis() - 1);
        app.inventory.store.reserve(late, &lines, past, past).await.unwrap();
        // The hold lapses, its units go back on sale, and another order takes them.
        app.inventory.store.expire_due(Timestamp::now(), 10).await.unwrap();
        app.reserve(other, vec![line(product, 2)]).await;
        let (status, problem) = app.commit(late).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:out-of-stock");
        assert_eq!(problem["product_ids"][0], product.to_string());
        let stock = app.stock(product).await;
        assert_eq!((stock.available, stock.reserved, stock.sold), (1, 2, 0), "nothing sold");
        let (_, body) = app.send(Method::GET, &format!("/v1/reservations/{late}"), Some(&app.service()), None).await;
        assert_eq!(body["state"], "expired");
        app.assert_consistent().await;
    }

    async fn committing_a_lapsed_hold_sells_its_units_if_they_are_still_on_sale(app) {
        let product = app.new_product(5).await;
        let order = Uuid::now_v7();
        let lines = Lines::new(vec![Line { product_id: product, quantity: 3 }]).unwrap();
        let past = Timestamp::from_millis(Timestamp::now().millis() - 1);
        app.inventory.store.reserve(order, &lines, past, past).await.unwrap();
        assert_eq!(app.stock(product).await.available, 2);
        // The expiry loop has not reached it: the commit expires it and sells it again.
        let (status, committed) = app.commit(order).await;
        assert_eq!(status, StatusCode::OK, "{committed}");
        assert_eq!(committed["state"], "committed");
        let stock = app.stock(product).await;
        assert_eq!((stock.available, stock.reserved, stock.sold), (2, 0, 3), "sold once");
        let (status, again) = app.commit(order).await;
        assert_eq!((status, again["state"].as_str()), (StatusCode::OK, Some("committed")));
        assert_eq!(app.stock(product).await.sold, 3);
        app.assert_consistent().await;
    }

    async fn finished_reservations_go_after_their_retention_and_holds_stay(app) {
        let store = &app.inventory.store;
        let product = app.new_product(10).await;
        let lines = Lines::new(vec![Line { product_id: product, quantity: 1 }]).unwrap();
        let t = Timestamp::now();
        let later = Timestamp::from_millis(t.millis() + 600_000);
        let (held, sold, released) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for order in [held, sold, released] {
            store.reserve(order, &lines, later, t).await.unwrap();
        }
        store.commit(sold, t, Lapsed::TakeAgain).await.unwrap();
        store.release(released, t).await.unwrap();
        let tombstone = Uuid::now_v7();
        store.release(tombstone, t).await.unwrap();
        assert_eq!(store.purge_finished(t, 100).await.unwrap(), 0, "nothing older than t");
        assert_eq!(store.purge_finished(Timestamp::from_millis(t.millis() + 1), 100).await.unwrap(), 3);
        assert!(store.reservation(sold).await.unwrap().is_none());
        assert!(store.reservation(tombstone).await.unwrap().is_none());
        assert_eq!(store.reservation(held).await.unwrap().unwrap().state, ReservationState::Held);
        let stock = app.stock(product).await;
        assert_eq!((stock.available, stock.reserved, stock.sold), (8, 1, 1), "counts untouched");
    }
}
