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

/// Every stored signing key: (kid, the private key column as stored).
async fn stored_private_keys(app: &crate::helpers::TestApp) -> Vec<(String, String)> {
    let sql = "SELECT kid, pkcs8 FROM signing_keys ORDER BY created_at";
    match app.state.store.database() {
        souk_chassis::Database::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        souk_chassis::Database::Postgres(pool) => {
            sqlx::query_as(sql).fetch_all(pool).await.unwrap()
        }
    }
}

souk_chassis::backend_tests! { crate::helpers::spawn;

    async fn a_copy_of_the_database_cannot_sign_tokens(app) {
        // The attack: read identity's database (a backup, a dump, a file another local user can
        // read) and sign an admin token with the private key found there.
        use base64::Engine;
        let stored = stored_private_keys(&app).await;
        assert!(!stored.is_empty());
        for (kid, column) in &stored {
            assert!(souk_chassis::seal::is_sealed(column), "sealed at rest: {column:.20}");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(column.trim_start_matches("sealed:v1:"))
                .unwrap();
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
            header.kid = Some(kid.clone());
            let mut claims = crate::helpers::claims("forged-admin");
            claims["role"] = "admin".into();
            let forged = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&bytes));
            if let Ok(forged) = forged {
                crate::helpers::assert_unauthorized(&app.me(&forged).await, "a token signed with the stored column");
            }
        }
        // Without the key that lives outside the database, identity itself cannot use them.
        let wrong = souk_identity::Config {
            key_secret: souk_chassis::Secret::new("another secret of thirty-two characters"),
            ..crate::helpers::config_for(&app.db)
        };
        match souk_identity::build(wrong, None).await {
            Err(souk_identity::SetupError::Keys(err)) => assert!(err.to_string().contains("does not open"), "{err}"),
            other => panic!("expected the wrong key to be refused, got {:?}", other.map(|_| "a running service")),
        }
    }

    async fn keys_stored_in_the_clear_by_an_older_version_are_sealed_at_start(app) {
        use base64::Engine;
        app.registered("ada@example.com").await;
        let (token, _) = app.tokens("ada@example.com", PASSWORD).await;
        let sealer = crate::helpers::sealer();
        for (kid, column) in stored_private_keys(&app).await {
            let der = sealer.open(&column, &kid).unwrap();
            let plain = base64::engine::general_purpose::STANDARD.encode(der);
            app.state.store.reseal_key(&kid, &plain).await.unwrap();
        }
        assert!(stored_private_keys(&app).await.iter().all(|(_, c)| !souk_chassis::seal::is_sealed(c)));
        let restarted = app.build_again(None).await.unwrap();
        assert!(stored_private_keys(&app).await.iter().all(|(_, c)| souk_chassis::seal::is_sealed(c)));
        assert_eq!(restarted.state.keys().signer.0, app.state.keys().signer.0, "the same key, now sealed");
        souk_identity::tokens::verify_access(&restarted.state.keys(), "souk-identity", "souk", &token).unwrap();
    }
}
