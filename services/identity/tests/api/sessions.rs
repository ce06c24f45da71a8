//! Ending sessions: `POST /v1/auth/logout` ends one login, `POST /v1/auth/password` ends every
//! login of the account, and refresh tokens of ended logins are purged.

use reqwest::StatusCode;
use serde_json::json;
use souk_chassis::Database;

use crate::helpers::{PASSWORD, TestApp, assert_unauthorized, now, pair, spawn};

/// How many refresh tokens the store holds.
async fn stored_refresh_tokens(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM refresh_tokens";
    match app.state.store.database() {
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

const NEW_PASSWORD: &str = "a brand new passphrase";

souk_chassis::backend_tests! { spawn;

    async fn a_copied_refresh_token_is_dead_after_logout(app) {
        app.registered("ada@example.com").await;
        let (_, refresh) = app.tokens("ada@example.com", PASSWORD).await;
        let (_, other_device) = app.tokens("ada@example.com", PASSWORD).await;
        // The attacker copied the refresh token and rotated it once: the family has moved on.
        let reply = app.refresh(&refresh).await;
        let (_, rotated) = pair(&reply);
        let copied = rotated.clone();
        // The shopper signs out with the token they hold.
        let reply = app.post("/v1/auth/logout", &json!({ "refresh_token": rotated })).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
        assert!(reply.text.is_empty());
        // The copy no longer buys anything; the login on the other device is a family of its own.
        assert_unauthorized(&app.refresh(&copied).await, "the copied token after logout");
        let reply = app.refresh(&other_device).await;
        assert_eq!(reply.status, StatusCode::OK, "another login is untouched: {}", reply.text);
        // Logging out twice, or with a token nobody knows, says the same and changes nothing.
        for token in [copied.as_str(), "not a token", &"A".repeat(10_000)] {
            let reply = app.post("/v1/auth/logout", &json!({ "refresh_token": token })).await;
            assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
        }
        let reply = app.post("/v1/auth/logout", &json!({ "token": "x" })).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields are refused: {}", reply.text);
    }

    async fn a_password_change_ends_every_login_of_the_account(app) {
        app.registered("ada@example.com").await;
        app.registered("bob@example.com").await;
        let (access, laptop) = app.tokens("ada@example.com", PASSWORD).await;
        let (_, stolen) = app.tokens("ada@example.com", PASSWORD).await;
        let (_, bobs) = app.tokens("bob@example.com", PASSWORD).await;
        let change = |access: &str, current: &str, new: &str| {
            let request = app
                .server
                .client
                .post(app.server.url("/v1/auth/password"))
                .bearer_auth(access)
                .json(&json!({ "current_password": current, "new_password": new }));
            async move { crate::helpers::read(request.send().await.unwrap()).await }
        };
        // Wrong current password, weak new one: 422 naming the field, and nothing changes.
        let reply = change(&access, "not my password at all", NEW_PASSWORD).await;
        assert_eq!((reply.status, reply.body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("current_password")), "{}", reply.text);
        let reply = change(&access, PASSWORD, "short").await;
        assert_eq!((reply.status, reply.body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("new_password")), "{}", reply.text);
        assert_unauthorized(&change("not a token", PASSWORD, NEW_PASSWORD).await, "no access token");
        let reply = app.refresh(&laptop).await;
        assert_eq!(reply.status, StatusCode::OK, "nothing was ended yet: {}", reply.text);
        let (_, laptop) = pair(&reply);

        let reply = change(&access, PASSWORD, NEW_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
        // Every refresh token of the account is dead, the thief's too; other accounts' are not.
        assert_unauthorized(&app.refresh(&stolen).await, "the stolen token after the change");
        assert_unauthorized(&app.refresh(&laptop).await, "the laptop's token after the change");
        assert_eq!(app.refresh(&bobs).await.status, StatusCode::OK);
        assert_unauthorized(&app.login("ada@example.com", PASSWORD).await, "the old password");
        app.tokens("ada@example.com", NEW_PASSWORD).await;
    }

    async fn refresh_tokens_of_ended_logins_are_purged_and_live_ones_kept(app) {
        app.registered("ada@example.com").await;
        let (_, live) = app.tokens("ada@example.com", PASSWORD).await;
        let (_, used) = app.tokens("ada@example.com", PASSWORD).await;
        let reply = app.refresh(&used).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(stored_refresh_tokens(&app).await, 3);
        // Nothing has ended yet: the purge keeps everything (the used token guards its family).
        assert_eq!(app.state.store.purge_refresh(now()).await.unwrap(), 0);
        assert_unauthorized(&app.refresh(&used).await, "reuse is still detected");
        // Thirty days and a second later, every one of those logins has ended.
        let later = now() + app.state.config.refresh_ttl_secs + 1;
        assert_eq!(app.state.store.purge_refresh(later).await.unwrap(), 3);
        assert_eq!(stored_refresh_tokens(&app).await, 0);
        assert_unauthorized(&app.refresh(&live).await, "a purged token");
    }
}
