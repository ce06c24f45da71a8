//! The simulated processor's vault at rest: a copy of payments' database holds no card number in
//! the clear, numbers kept in the clear by an older version are sealed at start, and the
//! simulator never runs where it is switched off (the production overlay).

use reqwest::StatusCode;
use souk_chassis::Database;
use uuid::Uuid;

use crate::helpers::{TestApp, VAULT_KEY, VISA, charge_body, spawn};

/// Every vault row: (token, card_number column as stored).
async fn vault(app: &TestApp) -> Vec<(String, String)> {
    let sql = "SELECT token, card_number FROM processor_vault";
    match app.payments.store.database() {
        Database::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

async fn execute(app: &TestApp, sql: &str, a: &str, b: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match app.payments.store.database() {
        Database::Sqlite(pool) => drop(
            sqlx::query(sql)
                .bind(a)
                .bind(b)
                .execute(pool)
                .await
                .unwrap(),
        ),
        Database::Postgres(pool) => drop(
            sqlx::query(sql)
                .bind(a)
                .bind(b)
                .execute(pool)
                .await
                .unwrap(),
        ),
    }
}

souk_chassis::backend_tests! { spawn;

    async fn a_copy_of_the_database_holds_no_card_number(app) {
        // The attack: read payments.db (a backup, a dump, another user of the machine).
        let method = app.method_id("u1", VISA).await;
        let rows = vault(&app).await;
        assert_eq!(rows.len(), 1);
        let (token, stored) = &rows[0];
        assert!(souk_chassis::seal::is_sealed(stored), "{stored:.20}");
        assert!(!stored.contains(VISA) && !stored.contains("4242"), "no digits in the clear");
        // Without the key, which is not in the database, the row does not open.
        let other = souk_chassis::seal::Sealer::new(
            &souk_chassis::Secret::new("another key of at least thirty-two chars"),
            souk_payments::processor::VAULT_PURPOSE,
        )
        .unwrap();
        assert!(other.open(stored, token).is_err());
        // The processor itself reads it: the card is charged.
        let (status, _, body) = app.charge(&charge_body(Uuid::now_v7(), "u1", &method, 500)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn card_numbers_kept_in_the_clear_are_sealed_at_start(app) {
        let method = app.method_id("u1", VISA).await;
        let (token, _) = vault(&app).await.remove(0);
        execute(&app, "UPDATE processor_vault SET card_number = $1 WHERE token = $2", VISA, &token).await;
        let (server, _restarted) = app.another(|_| {}).await;
        let (_, stored) = vault(&app).await.remove(0);
        assert!(souk_chassis::seal::is_sealed(&stored), "sealed at start");
        let (status, _, body) = app
            .send_on(&server, reqwest::Method::POST, "/v1/payments", Some(&app.service()), Some(&charge_body(Uuid::now_v7(), "u1", &method, 700)))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn the_simulator_does_not_run_where_it_is_switched_off(app) {
        let mut config = app.config.clone();
        config.processor.simulated = false;
        match souk_payments::build(&config).await {
            Err(souk_payments::StartError::Invalid(message)) => assert!(message.contains("simulated"), "{message}"),
            other => panic!("expected a refused start, got {:?}", other.map(|_| "a running service")),
        }
        // And a vault key too short to be one stops the start as well.
        let mut config = app.config.clone();
        config.processor.vault_key = souk_chassis::Secret::new("short");
        assert!(souk_payments::build(&config).await.is_err_and(|e| e.setup_error::<souk_chassis::seal::SealError>().is_some()));
        assert_ne!(config.processor.vault_key.expose(), VAULT_KEY);
    }
}
