//! Step 1 of checkout: the happy path to `confirmed`, prices from the catalog only, and every
//! reason the cart cannot become an order — none of which stores anything.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::fakes::Card;
use crate::helpers::{checkout_body, spawn};

souk_chassis::backend_tests! { spawn;
    async fn a_cart_is_reserved_charged_and_confirmed(app) {
        let shopper = app.shopper(2);
        let (status, headers, body) = app.place(&shopper, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "pending");
        let id: uuid::Uuid = body["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(headers["location"], format!("/api/v1/orders/{id}").as_str());

        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "confirmed", "{order}");
        assert_eq!(order["cancel_reason"], serde_json::Value::Null);
        assert_eq!(order["total"], json!({"amount": 2500, "currency": "USD"}));
        assert_eq!(order["payment_method_id"], shopper.method.to_string().as_str());
        assert_eq!(order["shipping_address"]["country"], "GB");
        assert_eq!(order["shipping_address"]["line2"], serde_json::Value::Null);
        let line = &order["lines"][0];
        assert_eq!(line["product_id"], shopper.product.to_string().as_str());
        assert_eq!(line["name"], "Enamel mug");
        assert!(line["sku"].as_str().unwrap().starts_with("SKU-"));
        assert_eq!(line["quantity"], 2);
        assert_eq!(line["unit_price"], json!({"amount": 1250, "currency": "USD"}));
        assert_eq!(line["line_total"], json!({"amount": 2500, "currency": "USD"}));

        assert_eq!(app.fakes.captures(id), 1);
        assert_eq!(app.fakes.payment(id).as_deref(), Some("captured"));
        assert_eq!(app.fakes.reservation(id).as_deref(), Some("committed"));
        assert_eq!(app.fakes.available(shopper.product), 98);
        assert_eq!(app.fakes.calls_of("release"), 0);
        assert_eq!(app.fakes.calls_of("refund"), 0);
        let payment = app.fakes.world().payments[&id].clone();
        assert_eq!((payment.amount, payment.currency.as_str()), (2500, "USD"));

        let events = app.events_of(id).await;
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["souk.orders.order_placed.v1", "souk.orders.order_confirmed.v1"]);
        let confirmed = &events[1];
        assert_eq!(confirmed["source"], "souk/orders");
        assert_eq!(confirmed["data"]["order_id"], id.to_string().as_str());
        assert_eq!(confirmed["data"]["user_id"], shopper.user.as_str());
        assert_eq!(confirmed["data"]["total"], json!({"amount": 2500, "currency": "USD"}));
        assert_eq!(confirmed["data"]["lines"][0]["name"], "Enamel mug");
        assert_eq!(confirmed["data"]["lines"][0]["quantity"], 2);
        assert_eq!(confirmed["data"]["created_at"], order["created_at"]);
        assert!(confirmed["data"]["confirmed_at"].as_str().unwrap().ends_with('Z'));
    }

    async fn prices_come_from_the_catalog_never_the_cart_or_the_client(app) {
        let shopper = app.shopper(3);
        // The fake cart prices every line at 1 cent; the client adds a price of its own.
        let mut body = checkout_body(shopper.method);
        body["total"] = json!({"amount": 1, "currency": "USD"});
        let (status, _, problem) = app.place_on(&app.instance().server, &shopper, None, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields are refused: {problem}");
        let id = app.place_ok(&shopper).await;
        let order = app.order(&shopper, id).await;
        assert_eq!(order["lines"][0]["unit_price"]["amount"], 1250);
        assert_eq!(order["total"]["amount"], 3750);
        app.settled(&shopper, id).await;
        assert_eq!(app.fakes.world().payments[&id].amount, 3750);
    }

    async fn an_empty_cart_is_a_422_and_stores_nothing(app) {
        let shopper = app.shopper(1);
        app.fakes.world().carts.clear();
        let (status, _, problem) = app.place(&shopper, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["type"], "urn:souk:problem:cart-empty");
        assert_eq!(app.count("orders").await, 0);
    }

    async fn lines_the_catalog_no_longer_has_are_named(app) {
        let shopper = app.shopper(1);
        let gone = uuid::Uuid::now_v7();
        app.fakes.add_line(&shopper.user, gone, 1, "unavailable");
        let (status, _, problem) = app.place(&shopper, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:cart-not-ready");
        assert_eq!(problem["errors"][0]["field"], "cart.items[1]");
        assert_eq!(problem["product_ids"], json!([gone]));

        // The cart says ok, but the catalog has dropped the product since.
        let other = app.shopper(1);
        app.fakes.add_to_cart(&other.user, gone, 2);
        let (status, _, problem) = app.place(&other, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:product-unavailable");
        assert_eq!(problem["product_ids"], json!([gone]));
        assert_eq!(app.count("orders").await, 0);
    }

    async fn a_line_the_cart_could_not_price_is_priced_by_the_catalog(app) {
        let shopper = app.shopper(1);
        let other = app.fakes.product("Tea towel", 400, "USD", 5);
        app.fakes.add_line(&shopper.user, other, 2, "price_unavailable");
        let id = app.place_ok(&shopper).await;
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "confirmed");
        assert_eq!(order["total"]["amount"], 1250 + 800);
    }

    async fn mixed_currencies_are_a_409(app) {
        let shopper = app.shopper(1);
        let euro = app.fakes.product("Croissant", 200, "EUR", 5);
        app.fakes.add_to_cart(&shopper.user, euro, 1);
        let (status, _, problem) = app.place(&shopper, None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(problem["type"], "urn:souk:problem:mixed-currencies");
    }

    async fn another_users_payment_method_is_a_422(app) {
        let shopper = app.shopper(1);
        let stranger = app.fakes.method("someone-else", Card::Good);
        let body = checkout_body(stranger);
        let (status, _, problem) = app.place_on(&app.instance().server, &shopper, None, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:payment-method-invalid");
        assert_eq!(problem["errors"][0]["field"], "payment_method_id");
        assert_eq!(app.count("orders").await, 0);
    }

    async fn with_payments_unable_to_check_the_method_the_order_is_taken_and_the_charge_decides(app) {
        // Payments cannot answer whose card it is: checkout goes on rather than fail...
        app.fakes.world().down.insert("methods");
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        assert_eq!(app.settled(&shopper, id).await["status"], "confirmed");
        // ...and a card that is not the caller's is refused by the charge, never taken.
        let thief = app.shopper(2);
        let stranger = app.fakes.method("someone-else", Card::Good);
        let (status, _, answer) = app
            .place_on(&app.instance().server, &thief, None, &checkout_body(stranger))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let id = answer["id"].as_str().unwrap().parse().unwrap();
        let order = app.settled(&thief, id).await;
        assert_eq!(order["status"], "cancelled", "{order}");
        assert_eq!(order["cancel_reason"], "payment_failed", "{order}");
        app.fakes.world().down.clear();
    }

    async fn a_neighbour_down_at_step_1_is_a_503_and_nothing_is_stored(app) {
        let shopper = app.shopper(1);
        for endpoint in ["cart", "catalog"] {
            app.fakes.world().down.insert(endpoint);
            let (status, headers, problem) = app.place_allowing_5xx(&shopper, None).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{endpoint}: {problem}");
            assert_eq!(headers["retry-after"], "1");
            app.fakes.world().down.clear();
        }
        assert_eq!(app.count("orders").await, 0);
        assert_eq!(app.count("sagas").await, 0);
        assert_eq!(app.count("outbox").await, 0);
        let (_, page) = app.send(Method::GET, "/v1/orders", Some(&shopper.token), None).await;
        assert_eq!(page["items"], json!([]));
        // Once they answer, the same request works.
        let id = app.place_ok(&shopper).await;
        assert_eq!(app.settled(&shopper, id).await["status"], "confirmed");
    }
}
