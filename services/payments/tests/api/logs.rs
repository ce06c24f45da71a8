//! No log line carries a card number, even at the most verbose level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::json;
use souk_chassis::test_util::Backend;

use crate::helpers::{charge_body, random_card, spawn};

/// Collects everything written by a subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// A current-thread runtime: the server's tasks run on this thread, under this thread's subscriber.
#[tokio::test]
async fn card_numbers_never_reach_the_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // tracing caches each callsite's interest process-wide. With a single dispatcher registered
    // it computes that interest against the *registering* thread's default: another test's
    // thread, with no subscriber, reaching "payment method registered" first would cache
    // `never` and hide the event from this capture (tokio-rs/tracing#3611). A second live
    // dispatcher makes tracing ask every registered one instead.
    let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::callsite::rebuild_interest_cache();

    let app = spawn(Backend::Sqlite).await.unwrap();
    let number = random_card();
    let method = app.register("u1", &number).await;
    let id = method["id"].as_str().unwrap();
    let spaced = format!("{} {}", &number[..8], &number[8..]);
    let body = json!({"card_number": spaced, "exp_month": 1, "exp_year": 1999, "cvc": "987"});
    let (status, _) = app
        .send(
            Method::POST,
            "/v1/payment-methods",
            Some(&app.user("u1")),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let order = uuid::Uuid::now_v7();
    let (status, _, _) = app.charge(&charge_body(order, "u1", id, 100)).await;
    assert_eq!(status, StatusCode::CREATED);
    app.refund(order).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("payment method registered") && logs.contains("payment captured"),
        "the capture works: {logs}"
    );
    for needle in [&number[..12], &spaced[..12], "cvc\":\"987"] {
        assert!(!logs.contains(needle), "{needle} is in the logs:\n{logs}");
    }
}
