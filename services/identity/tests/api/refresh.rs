//! `POST /v1/auth/refresh`: rotation, reuse detection, and refresh tokens that are not ours.

use reqwest::StatusCode;
use souk_chassis::Database;
use souk_identity::tokens;

use crate::helpers::{PASSWORD, TestApp, assert_unauthorized, pair, spawn};

/// The stored `token_hash` column of every refresh token.
async fn stored_refresh_hashes(app: &TestApp) -> Vec<String> {
    let sql = "SELECT token_hash FROM refresh_tokens ORDER BY created_at";
    match app.state.store.database() {
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
    }
}

souk_chassis::backend_tests! { spawn;

    async fn a_refresh_rotates_the_pair(app) {
        let account = app.registered("ada@example.com").await;
        let (access, refresh) = app.tokens("ada@example.com", PASSWORD).await;
        let reply = app.refresh(&refresh).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let (new_access, new_refresh) = pair(&reply);
        assert_ne!(new_access, access);
        assert_ne!(new_refresh, refresh);
        let me = app.me(&new_access).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text);
        assert_eq!(me.body["id"], account["id"]);
        // And the new refresh token rotates in turn.
        let reply = app.refresh(&new_refresh).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    async fn a_used_refresh_token_is_401_and_revokes_its_whole_login(app) {
        app.registered("ada@example.com").await;
        let (_, stolen) = app.tokens("ada@example.com", PASSWORD).await;
        let (_, other_login) = app.tokens("ada@example.com", PASSWORD).await;
        let reply = app.refresh(&stolen).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let (_, rotated) = pair(&reply);

        let replay = app.refresh(&stolen).await;
        assert_unauthorized(&replay, "the used token");
        // The replay revoked the family: the token from the rotation is dead too.
        assert_unauthorized(&app.refresh(&rotated).await, "the rotated token after a replay");
        assert_unauthorized(&app.refresh(&stolen).await, "the used token, a third time");
        // Another login of the same account is a different family and still works.
        let reply = app.refresh(&other_login).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    async fn unknown_garbage_and_huge_refresh_tokens_are_401(app) {
        app.registered("ada@example.com").await;
        let (access, refresh) = app.tokens("ada@example.com", PASSWORD).await;
        let unknown = tokens::new_refresh_token().unwrap();
        let flipped = format!("{}{}", &refresh[..42], if refresh.ends_with('A') { 'B' } else { 'A' });
        let huge = "A".repeat(10 * 1024);
        for (what, token) in [
            ("unknown", unknown.as_str()),
            ("one character changed", flipped.as_str()),
            ("garbage", "this is not a refresh token"),
            ("empty", ""),
            ("non-ASCII", "ключ🔑\u{0}"),
            ("an access token", access.as_str()),
            ("10 KB", huge.as_str()),
        ] {
            assert_unauthorized(&app.refresh(token).await, what);
        }
        // None of that disturbed the real token.
        let reply = app.refresh(&refresh).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    async fn refresh_tokens_are_stored_only_as_their_sha256(app) {
        app.registered("ada@example.com").await;
        let (_, refresh) = app.tokens("ada@example.com", PASSWORD).await;
        let stored = stored_refresh_hashes(&app).await;
        assert_eq!(stored, [tokens::refresh_hash(&refresh)]);
        assert_eq!(stored[0].len(), 64);
        assert!(!stored[0].contains(&refresh));
    }
}
