//! Registering cards: validation, brands, ownership, and where a card number may (not) go.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use souk_payments::domain::Timestamp;

use crate::helpers::{VISA, card, random_card, spawn, this_year};

/// The fields a registration's 422 names, in order.
fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

souk_chassis::backend_tests! { spawn;

    async fn invalid_cards_are_422_naming_each_field(app) {
        let token = app.user("u1");
        let year = this_year() + 2;
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("non-Luhn", json!({"card_number": "4242424242424241", "exp_month": 1, "exp_year": year, "cvc": "123"}), vec!["card_number"]),
            ("letters", json!({"card_number": "4242abcd42424242", "exp_month": 1, "exp_year": year, "cvc": "123"}), vec!["card_number"]),
            ("11 digits", json!({"card_number": "42424242426", "exp_month": 1, "exp_year": year, "cvc": "123"}), vec!["card_number"]),
            ("20 digits", json!({"card_number": "42424242424242424242", "exp_month": 1, "exp_year": year, "cvc": "123"}), vec!["card_number"]),
            ("empty", json!({"card_number": "", "exp_month": 1, "exp_year": year, "cvc": "123"}), vec!["card_number"]),
            ("a JSON number", json!({"card_number": 4242424242424242_u64, "exp_month": 1, "exp_year": year, "cvc": "123"}), vec!["card_number"]),
            ("month 0", json!({"card_number": VISA, "exp_month": 0, "exp_year": year, "cvc": "123"}), vec!["exp_month"]),
            ("month 13", json!({"card_number": VISA, "exp_month": 13, "exp_year": year, "cvc": "123"}), vec!["exp_month"]),
            ("month as text", json!({"card_number": VISA, "exp_month": "12", "exp_year": year, "cvc": "123"}), vec!["exp_month"]),
            ("last year", json!({"card_number": VISA, "exp_month": 12, "exp_year": this_year() - 1, "cvc": "123"}), vec!["exp_year"]),
            ("two-digit year", json!({"card_number": VISA, "exp_month": 12, "exp_year": 30, "cvc": "123"}), vec!["exp_year"]),
            ("cvc too short", json!({"card_number": VISA, "exp_month": 1, "exp_year": year, "cvc": "12"}), vec!["cvc"]),
            ("cvc too long", json!({"card_number": VISA, "exp_month": 1, "exp_year": year, "cvc": "12345"}), vec!["cvc"]),
            ("cvc letters", json!({"card_number": VISA, "exp_month": 1, "exp_year": year, "cvc": "12a"}), vec!["cvc"]),
            ("cvc as a number", json!({"card_number": VISA, "exp_month": 1, "exp_year": year, "cvc": 123}), vec!["cvc"]),
            ("everything", json!({"card_number": "1234", "exp_month": 14, "exp_year": year, "cvc": ""}), vec!["card_number", "exp_month", "cvc"]),
        ];
        for (what, body, expected) in cases {
            let (status, problem) = app.send(Method::POST, "/v1/payment-methods", Some(&token), Some(&body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {problem}");
            assert_eq!(problem["type"], "urn:souk:problem:validation", "{what}");
            assert_eq!(fields(&problem), expected, "{what}: {problem}");
            assert!(!problem.to_string().contains("4242424242"), "{what} echoed the number: {problem}");
        }
        let (_, list) = app.send(Method::GET, "/v1/payment-methods", Some(&token), None).await;
        assert_eq!(list["items"], json!([]), "nothing was registered");
    }

    async fn a_card_is_valid_through_the_end_of_its_month(app) {
        let token = app.user("u1");
        let (year, month) = Timestamp::now().year_month();
        let (last_year, last_month) = if month == 1 { (year - 1, 12) } else { (year, month - 1) };
        let body = |y: i64, m: i64| json!({"card_number": VISA, "exp_month": m, "exp_year": y, "cvc": "123"});
        let (status, method) = app.send(Method::POST, "/v1/payment-methods", Some(&token), Some(&body(year, month))).await;
        assert_eq!(status, StatusCode::CREATED, "this month: {method}");
        assert_eq!((method["exp_month"].as_i64(), method["exp_year"].as_i64()), (Some(month), Some(year)));
        let (status, problem) = app.send(Method::POST, "/v1/payment-methods", Some(&token), Some(&body(last_year, last_month))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "last month: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("expired"), "{problem}");
        let (status, _) = app.send(Method::POST, "/v1/payment-methods", Some(&token), Some(&body(year + 1, 1))).await;
        assert_eq!(status, StatusCode::CREATED, "next year");
    }

    async fn brands_and_last_four_come_from_the_number(app) {
        for (number, brand, last4) in [
            ("4242 4242 4242 4242", "visa", "4242"),
            ("5555-5555-5555-4444", "mastercard", "4444"),
            ("2223003122003222", "mastercard", "3222"),
            ("378282246310005", "amex", "0005"),
            ("6011111111111117", "unknown", "1117"),
        ] {
            let method = app.register("u1", number).await;
            assert_eq!(method["brand"], brand, "{number}");
            assert_eq!(method["last4"], last4, "{number}");
            let keys: Vec<&String> = method.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["brand", "exp_month", "exp_year", "id", "last4"], "exactly the public fields");
        }
        let (status, list) = app.send(Method::GET, "/v1/payment-methods", Some(&app.user("u1")), None).await;
        assert_eq!(status, StatusCode::OK);
        let brands: Vec<&str> = list["items"].as_array().unwrap().iter().map(|m| m["brand"].as_str().unwrap()).collect();
        assert_eq!(brands, ["visa", "mastercard", "mastercard", "amex", "unknown"], "oldest first");
    }

    async fn another_users_card_is_not_found(app) {
        let mine = app.method_id("alice", VISA).await;
        let (status, method) = app.send(Method::GET, &format!("/v1/payment-methods/{mine}"), Some(&app.user("alice")), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(method["id"], mine.as_str());
        let (status, problem) = app.send(Method::GET, &format!("/v1/payment-methods/{mine}"), Some(&app.user("mallory")), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "never 403: {problem}");
        let (_, list) = app.send(Method::GET, "/v1/payment-methods", Some(&app.user("mallory")), None).await;
        assert_eq!(list["items"], json!([]));
        let unknown = uuid::Uuid::now_v7();
        let (status, _) = app.send(Method::GET, &format!("/v1/payment-methods/{unknown}"), Some(&app.user("alice")), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn the_card_number_goes_only_to_the_processor_vault(app) {
        let number = random_card();
        let hidden = &number[..12];
        let method = app.register("u1", &number).await;
        let id = method["id"].as_str().unwrap().to_owned();
        assert_eq!(method["last4"], &number[12..]);
        let mut seen = vec![method];
        for path in ["/v1/payment-methods".to_owned(), format!("/v1/payment-methods/{id}")] {
            seen.push(app.send(Method::GET, &path, Some(&app.user("u1")), None).await.1);
        }
        let order = uuid::Uuid::now_v7();
        let (status, _, charged) = app.charge(&crate::helpers::charge_body(order, "u1", &id, 500)).await;
        assert_eq!(status, StatusCode::CREATED);
        seen.push(charged);
        seen.push(app.refund(order).await.1);
        seen.push(app.payment(order).await.1);
        for body in &seen {
            assert!(!body.to_string().contains(hidden), "a response holds the number: {body}");
        }
        let tables = app.tables().await;
        for own in ["payment_methods", "payments", "refunds"] {
            assert!(tables.iter().any(|t| t == own), "{own} in {tables:?}");
        }
        for table in tables.iter().filter(|t| !t.starts_with("processor_")) {
            assert_eq!(app.rows_containing(table, hidden).await, 0, "{table} holds the card number");
        }
        // The vault, which stands for the processor's own storage, holds it sealed: not in the
        // clear either (the charge above read it through the processor).
        assert_eq!(app.rows_containing("processor_vault", &number).await, 0);
        // The check can fail: the last four digits are kept, in the clear.
        assert_eq!(app.rows_containing("payment_methods", &number[12..]).await, 1, "last4 is kept");
    }

    async fn a_user_may_keep_twenty_cards(app) {
        for _ in 0..20 {
            app.register("u1", VISA).await;
        }
        let (status, problem) = app.send(Method::POST, "/v1/payment-methods", Some(&app.user("u1")), Some(&card(VISA))).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(problem["type"], "urn:souk:problem:payment-method-limit");
        let (_, list) = app.send(Method::GET, "/v1/payment-methods", Some(&app.user("u1")), None).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 20);
        app.register("u2", VISA).await;
    }
}
