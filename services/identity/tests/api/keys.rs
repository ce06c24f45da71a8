//! Signing keys: rotation logs nobody out, new tokens carry the new key id, and the JWKS
//! publishes both until the old key's tokens have expired.

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, jwt_parts, spawn};

souk_chassis::backend_tests! { spawn;

    async fn the_jwks_publishes_one_ed25519_key_and_may_be_cached(app) {
        let reply = app.get("/.well-known/jwks.json", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["cache-control"], "public, max-age=60");
        let keys = reply.body["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{}", reply.text);
        let key = keys[0].as_object().unwrap();
        let mut fields: Vec<&str> = key.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["alg", "crv", "kid", "kty", "use", "x"], "public parts only: {}", reply.text);
        assert_eq!(key["x"].as_str().unwrap().len(), 43, "32 bytes, base64url");
        assert_eq!(key["kid"].as_str(), Some(app.state.keys().signer.0.as_str()));
    }

    async fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(app) {
        app.registered("ada@example.com").await;
        let (before, _) = app.tokens("ada@example.com", PASSWORD).await;
        let old_kid = jwt_parts(&before).0["kid"].as_str().unwrap().to_owned();

        souk_identity::rotate_keys(&app.state).await.unwrap();

        let reply = app.me(&before).await;
        assert_eq!(reply.status, StatusCode::OK, "a token from before the rotation: {}", reply.text);
        let (after, _) = app.tokens("ada@example.com", PASSWORD).await;
        let new_kid = jwt_parts(&after).0["kid"].as_str().unwrap().to_owned();
        assert_ne!(new_kid, old_kid);
        assert_eq!(app.state.keys().signer.0, new_kid);
        let reply = app.me(&after).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let mut published = app.published_kids().await;
        published.sort();
        let mut expected = vec![old_kid, new_kid];
        expected.sort();
        assert_eq!(published, expected);
    }

    async fn keys_survive_a_restart(app) {
        app.registered("ada@example.com").await;
        let (token, _) = app.tokens("ada@example.com", PASSWORD).await;
        souk_identity::rotate_keys(&app.state).await.unwrap();
        let restarted = app.build_again(None).await.unwrap();
        assert_eq!(restarted.state.keys().signer.0, app.state.keys().signer.0, "the same signer, not a new key");
        let mut kids: Vec<String> = restarted.state.keys().published.iter().map(|(kid, _, _)| kid.clone()).collect();
        let mut expected = app.published_kids().await;
        kids.sort();
        expected.sort();
        assert_eq!(kids, expected);
        let claims = souk_identity::tokens::verify_access(&restarted.state.keys(), "souk-identity", "souk", &token).unwrap();
        assert_eq!(claims.role, souk_identity::domain::Role::User);
    }
}

souk_chassis::backend_tests! { crate::helpers::spawn;
    async fn a_rotation_by_another_instance_reaches_this_one_on_reload(app) {
        let other = app.build_again(None).await.unwrap();
        souk_identity::rotate_keys(&other.state).await.unwrap();
        let rotated_kid = other.state.keys().signer.0.clone();
        assert_ne!(app.state.keys().signer.0, rotated_kid, "not yet: this instance still has the old signer");
        souk_identity::reload_keys(&app.state).await.unwrap();
        assert_eq!(app.state.keys().signer.0, rotated_kid);
        assert_eq!(app.state.keys().published.len(), 2, "the retired key stays published");
    }
}
