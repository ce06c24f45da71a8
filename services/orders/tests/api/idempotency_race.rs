//! Issue 7 (a): one `Idempotency-Key`, 32 identical `POST /v1/orders` at once, 100 times over —
//! each time one order and one charge.
//!
//! DESIGN.md: "a concurrent duplicate waits for or conflicts with the first, never executes
//! twice". Orders conflicts rather than waits, so these answers are acceptable, and only these:
//! - `202` with the order's id, without `Idempotent-Replayed`: the one attempt that ran (exactly
//!   one per trial);
//! - `202` with the same body and `Location`, with `Idempotent-Replayed: true`: a duplicate that
//!   came after the first had its answer;
//! - `409 request-in-progress` with `Retry-After: 1`: a duplicate that came while the first ran.
//!
//! Anything else (a second id, a 503, a 500) fails the test.

use std::collections::HashSet;
use std::time::Instant;

use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::helpers::{checkout_body, spawn};

/// Trials per backend.
const TRIALS: usize = 100;
/// Identical requests per trial.
const CONCURRENT: usize = 32;

/// What the trials came to.
#[derive(Debug, Default)]
struct Tally {
    first: usize,
    replayed: usize,
    in_progress: usize,
}

souk_chassis::backend_tests! { spawn;
    async fn thirty_two_concurrent_posts_with_one_key_place_one_order_and_one_charge(app) {
        let started = Instant::now();
        let server = &app.instance().server;
        let mut tally = Tally::default();
        let mut placed = Vec::with_capacity(TRIALS);
        for trial in 0..TRIALS {
            let shopper = app.shopper(1);
            let key = format!("race-{trial}-{}", Uuid::now_v7().simple());
            let body = checkout_body(shopper.method);
            let attempts = (0..CONCURRENT).map(|_| app.place_on(server, &shopper, Some(&key), &body));
            let answers = futures::future::join_all(attempts).await;
            let mut ids = HashSet::new();
            let mut first = 0;
            for (status, headers, answer) in answers {
                match status {
                    StatusCode::ACCEPTED => {
                        let id = answer["id"].as_str().unwrap().to_owned();
                        let location = headers["location"].to_str().unwrap();
                        assert_eq!(location, format!("/api/v1/orders/{id}"), "trial {trial}");
                        assert_eq!(answer["status"], "pending", "trial {trial}: {answer}");
                        ids.insert(id);
                        if headers.get("idempotent-replayed").is_some() {
                            tally.replayed += 1;
                        } else {
                            first += 1;
                        }
                    }
                    StatusCode::CONFLICT => {
                        assert_eq!(answer["type"], "urn:souk:problem:request-in-progress", "trial {trial}: {answer}");
                        assert_eq!(headers["retry-after"], "1", "trial {trial}");
                        tally.in_progress += 1;
                    }
                    other => panic!("trial {trial}: {other} is not an acceptable answer: {answer}"),
                }
            }
            assert_eq!(first, 1, "trial {trial}: the request ran {first} times");
            tally.first += first;
            assert_eq!(ids.len(), 1, "trial {trial}: {ids:?}");
            let id: Uuid = ids.into_iter().next().unwrap().parse().unwrap();
            // The user has that order and no other.
            let (status, page) = app.send(Method::GET, "/v1/orders", Some(&shopper.token), None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let listed: Vec<&str> = page["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
            assert_eq!(listed, [id.to_string()], "trial {trial}");
            placed.push((shopper, key, id));
        }
        let posted = started.elapsed();

        // Every saga settles, each order charged once, and a client retrying after its 409
        // gets the first answer.
        for (shopper, key, id) in &placed {
            let order = app.settled(shopper, *id).await;
            assert_eq!(order["status"], "confirmed", "{order}");
            assert_eq!(app.fakes.captures(*id), 1, "order {id}");
            let (status, headers, again) = app.place(shopper, Some(key)).await;
            assert_eq!((status, again["id"].as_str()), (StatusCode::ACCEPTED, Some(id.to_string().as_str())));
            assert_eq!(headers["idempotent-replayed"], "true");
        }
        let orders = app.count("orders").await;
        assert_eq!(orders, TRIALS as i64);
        let (charges, charge_calls) = {
            let world = app.fakes.world();
            (world.captures.values().sum::<u32>(), world.calls.iter().filter(|c| c.starts_with("charge ")).count())
        };
        assert_eq!(charges as usize, TRIALS, "one capture per order");
        assert_eq!(tally.first + tally.replayed + tally.in_progress, TRIALS * CONCURRENT);
        println!(
            "idempotency race ({}): {TRIALS} trials, {} POSTs, {orders} orders created, {charges} charges \
             ({charge_calls} charge calls); answers: {} ran, {} replayed 202, {} 409 request-in-progress; \
             POSTs took {:.1?}, all {:.1?}",
            app.database().engine(),
            TRIALS * CONCURRENT,
            tally.first,
            tally.replayed,
            tally.in_progress,
            posted,
            started.elapsed(),
        );
    }
}
