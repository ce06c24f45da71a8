//! Many buyers at once: the database decides who gets the last unit, and nobody gets it twice.

use futures::future::join_all;
use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{line, spawn};

/// Buyers per trial, units per trial, trials.
const BUYERS: usize = 20;
const UNITS: i64 = 5;
const TRIALS: usize = 100;

souk_chassis::backend_tests! { spawn;

    async fn twenty_buyers_for_five_units_leave_exactly_five_sales(app) {
        for trial in 0..TRIALS {
            let product = app.new_product(UNITS).await;
            let buyers = (0..BUYERS).map(|_| app.reserve(Uuid::now_v7(), vec![line(product, 1)]));
            let answers = join_all(buyers).await;
            let won = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
            let lost = answers.iter().filter(|(s, p)| *s == StatusCode::CONFLICT && p["type"] == "urn:souk:problem:out-of-stock").count();
            assert_eq!((won, lost), (UNITS as usize, BUYERS - UNITS as usize), "trial {trial}: {answers:?}");
            let stock = app.stock(product).await;
            assert_eq!((stock.available, stock.reserved, stock.sold), (0, UNITS, 0), "trial {trial}");
            assert!(stock.is_consistent());
        }
    }

    async fn a_commit_racing_a_release_has_one_winner(app) {
        for trial in 0..30 {
            let product = app.new_product(2).await;
            let order = Uuid::now_v7();
            assert_eq!(app.reserve(order, vec![line(product, 2)]).await.0, StatusCode::CREATED);
            let (committed, released) = tokio::join!(app.commit(order), app.release(order));
            let stock = app.stock(product).await;
            match (committed.0, released.0) {
                (StatusCode::OK, StatusCode::CONFLICT) => {
                    assert_eq!((stock.available, stock.reserved, stock.sold), (0, 0, 2), "trial {trial}");
                }
                (StatusCode::CONFLICT, StatusCode::OK) => {
                    assert_eq!((stock.available, stock.reserved, stock.sold), (2, 0, 0), "trial {trial}");
                }
                other => panic!("trial {trial}: {other:?} {committed:?} {released:?}"),
            }
        }
    }

    async fn duplicate_reservations_racing_take_stock_once(app) {
        for trial in 0..10 {
            let product = app.new_product(10).await;
            let order = Uuid::now_v7();
            let answers = join_all((0..8).map(|_| app.reserve(order, vec![line(product, 3)]))).await;
            let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
            let replayed = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
            assert_eq!((created, replayed), (1, 7), "trial {trial}: {answers:?}");
            assert_eq!(app.stock(product).await.available, 7, "trial {trial}");
        }
    }

    async fn many_products_across_many_orders_do_not_deadlock(app) {
        let products: Vec<Uuid> = join_all((0..4).map(|_| app.new_product(1000))).await;
        // Each order names the products in another order: the store locks them sorted.
        let orders = (0..40).map(|n| {
            let mut lines: Vec<_> = products.iter().map(|p| line(*p, 1)).collect();
            lines.rotate_left(n % 4);
            if n % 2 == 0 {
                lines.reverse();
            }
            app.reserve(Uuid::now_v7(), lines)
        });
        let answers = join_all(orders).await;
        assert!(answers.iter().all(|(s, _)| *s == StatusCode::CREATED), "{answers:?}");
        for product in products {
            assert_eq!(app.stock(product).await.available, 960);
        }
        app.assert_consistent().await;
    }

    // Issue 16: administrators adjusting and counting stock while shoppers check out. Every
    // unit is accounted for — received = what was put on sale + every adjustment and count
    // that was answered yes — and nothing is sold twice.
    async fn adjustments_and_counts_racing_checkouts_lose_no_unit_and_sell_none_twice(app) {
        let (product, sku) = app.new_product_with_sku(20).await;
        let buyers = (0..30).map(|n| {
            let app = &app;
            async move {
                let order = Uuid::now_v7();
                let (status, _) = app.reserve(order, vec![line(product, 1)]).await;
                if status != StatusCode::CREATED {
                    return 0;
                }
                if n % 2 == 0 {
                    assert_eq!(app.commit(order).await.0, StatusCode::OK);
                    1
                } else {
                    assert_eq!(app.release(order).await.0, StatusCode::OK);
                    0
                }
            }
        });
        let adjustments = (0..15).map(|n| {
            let (app, sku) = (&app, &sku);
            async move {
                let delta = if n % 3 == 0 { -1 } else { 2 };
                match app.adjust(sku, delta, None).await {
                    (StatusCode::CREATED, _) => delta,
                    (StatusCode::CONFLICT, problem) => {
                        assert_eq!(problem["type"], "urn:souk:problem:insufficient-stock");
                        0
                    }
                    other => panic!("adjustment: {other:?}"),
                }
            }
        });
        // Counts: each administrator reads, adds one unit to what it read, and writes it back
        // under that version — again, with a fresh reading, whenever the stock moved meanwhile.
        let counts = (0..5).map(|_| {
            let (app, sku) = (&app, &sku);
            async move {
                loop {
                    let (_, read, etag) = app.admin_stock(sku).await;
                    let available = read["available"].as_i64().unwrap();
                    let (status, _, body) = app.set_stock_if(sku, available + 1, &etag).await;
                    match status {
                        StatusCode::OK => return 1,
                        StatusCode::PRECONDITION_FAILED => continue,
                        other => panic!("count: {other} {body}"),
                    }
                }
            }
        });
        let (sold, adjusted, counted) = tokio::join!(
            join_all(buyers),
            join_all(adjustments),
            join_all(counts)
        );
        let sold: i64 = sold.iter().sum();
        let received = 20 + adjusted.iter().sum::<i64>() + counted.iter().sum::<i64>();
        let stock = app.stock(product).await;
        assert!(stock.is_consistent(), "{stock:?}");
        assert_eq!(stock.received, received, "every unit accounted for: {stock:?}");
        assert_eq!((stock.sold, stock.reserved), (sold, 0), "sold once each: {stock:?}");
        assert_eq!(stock.available, received - sold);
    }
}
