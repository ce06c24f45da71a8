//! `POST /v1/auth/login`: the token pair, one answer for every wrong login, and throttling.

use futures::{StreamExt, stream};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;
use souk_identity::tokens;

use crate::helpers::{
    PASSWORD, Reply, assert_unauthorized, jwt_parts, now, pair, spawn, spawn_with,
};

souk_chassis::backend_tests! { spawn;

    async fn a_login_returns_a_bearer_pair_with_an_eddsa_access_token(app) {
        let account = app.registered("ada@example.com").await;
        let before = now();
        let reply = app.login("ada@example.com", PASSWORD).await;
        let after = now();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let mut fields: Vec<&str> = reply.body.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["access_token", "expires_in", "refresh_token", "token_type"]);
        let (access, refresh) = pair(&reply);

        let (header, claims) = jwt_parts(&access);
        assert_eq!(header["alg"], "EdDSA");
        let kid = header["kid"].as_str().expect("a kid in the header");
        let jwks = app.jwks().await;
        let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("the kid is published");
        assert_eq!((&jwk["kty"], &jwk["crv"], &jwk["alg"], &jwk["use"]), (&"OKP".into(), &"Ed25519".into(), &"EdDSA".into(), &"sig".into()));

        // Verify the way another service would: from the JWKS alone.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&["souk-identity"]);
        validation.set_audience(&["souk"]);
        let verified = jsonwebtoken::decode::<Value>(&access, &DecodingKey::from_jwk(&jwk).unwrap(), &validation).unwrap();
        assert_eq!(verified.claims, claims);

        let mut names: Vec<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["aud", "exp", "iat", "iss", "jti", "nbf", "role", "sub"]);
        assert_eq!(claims["iss"], "souk-identity");
        assert_eq!(claims["aud"], "souk");
        assert_eq!(claims["sub"], account["id"]);
        assert_eq!(claims["role"], "user");
        let iat = claims["iat"].as_i64().unwrap();
        assert!((before..=after).contains(&iat), "iat {iat} not in {before}..={after}");
        assert_eq!(claims["nbf"].as_i64(), Some(iat));
        assert_eq!(claims["exp"].as_i64(), Some(iat + 900));
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok(), "{claims}");

        let checked = tokens::verify_access(&app.state.keys(), "souk-identity", "souk", &access).unwrap();
        assert_eq!(checked.sub, account["id"].as_str().unwrap());
        // 32 random bytes, base64url without padding.
        assert_eq!(refresh.len(), 43, "{refresh}");
        assert!(refresh.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{refresh}");

        let (again, again_refresh) = app.tokens("ada@example.com", PASSWORD).await;
        assert_ne!(jwt_parts(&again).1["jti"], claims["jti"], "every token has its own id");
        assert_ne!(again_refresh, refresh);
    }

    async fn a_wrong_password_and_an_unknown_email_get_the_same_401(app) {
        app.registered("ada@example.com").await;
        let wrong = app.login("ada@example.com", "not the password at all").await;
        let unknown = app.login("nobody@example.com", "not the password at all").await;
        assert_unauthorized(&wrong, "wrong password");
        assert_unauthorized(&unknown, "unknown email");
        assert_eq!(wrong.text, unknown.text, "the bodies must not tell the cases apart");
        assert_eq!(wrong.headers["www-authenticate"], unknown.headers["www-authenticate"]);
        // Passwords are case-sensitive, and odd input is just another wrong login.
        let odd: [(&str, String); 4] = [
            ("ada@example.com", PASSWORD.to_uppercase()),
            ("ada@example.com", "x".repeat(5000)),
            ("ada@example.com", String::new()),
            ("not an email", PASSWORD.to_owned()),
        ];
        for (email, password) in odd {
            let reply = app.login(email, &password).await;
            assert_unauthorized(&reply, email);
            assert_eq!(reply.text, wrong.text, "{email}");
        }
    }

    async fn email_matching_is_case_insensitive(app) {
        let account = app.registered("Ada@Example.com").await;
        for spelling in ["ada@example.com", "ADA@EXAMPLE.COM", "  aDa@exAmple.com\t"] {
            let (access, _) = app.tokens(spelling, PASSWORD).await;
            assert_eq!(jwt_parts(&access).1["sub"], account["id"], "{spelling}");
        }
    }

    async fn a_burst_of_wrong_passwords_is_throttled_before_any_hashing(app) {
        app.registered("victim@example.com").await;
        app.registered("bystander@example.com").await;
        let hashed_before = app.state.hasher.hashes();
        let replies: Vec<Reply> = stream::iter(0..1000)
            .map(|i| {
                let app = &app;
                async move { app.login("victim@example.com", &format!("wrong guess number {i}")).await }
            })
            .buffer_unordered(50)
            .collect()
            .await;

        let failed = replies.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
        let throttled: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
        assert_eq!(failed + throttled.len(), 1000, "only 401s and 429s");
        assert!((1..=10).contains(&failed), "{failed} attempts were checked; the burst is 10");
        for reply in &throttled {
            assert_eq!(reply.body["type"], "urn:souk:problem:too-many-logins");
            let retry_after: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
            // One attempt comes back every 10 s (6 a minute).
            assert!((1..=10).contains(&retry_after), "Retry-After: {retry_after}");
        }
        // A throttled attempt is refused before its hash: only the checked ones cost one.
        let hashed = app.state.hasher.hashes() - hashed_before;
        assert_eq!(hashed, failed as u64, "{hashed} hashes for {failed} checked attempts");

        // The right password does not get through a throttled account either…
        let reply = app.login("victim@example.com", PASSWORD).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text);
        // …and nobody else is affected.
        app.tokens("bystander@example.com", PASSWORD).await;
        let reply = app.login("bystander@example.com", "a wrong guess here").await;
        assert_unauthorized(&reply, "another account");
    }
}

async fn spawn_with_one_stranger_at_a_time(
    backend: souk_chassis::test_util::Backend,
) -> Option<crate::helpers::TestApp> {
    spawn_with(
        backend,
        |config| {
            config.stranger_hashing_concurrency = 1;
            config.stranger_hashing_queue = 1;
        },
        None,
    )
    .await
}

souk_chassis::backend_tests! { spawn_with_one_stranger_at_a_time;

    async fn a_flood_of_unknown_accounts_from_many_addresses_hashes_within_a_bound(app) {
        // The attack: sign-ins to accounts that do not exist, each email new (so no account's
        // throttle applies) and, behind a spoofed or rotating address, no address limit either.
        // Identity hashes a dummy for each — at most one at a time, one more waiting, and the
        // rest are answered 429 at once instead of queueing for the CPU.
        app.registered("known@example.com").await;
        let replies: Vec<Reply> = stream::iter(0..40)
            .map(|i| {
                let app = &app;
                async move { app.login(&format!("nobody-{i}@example.com"), "a guess that is long").await }
            })
            .buffer_unordered(40)
            .collect()
            .await;
        let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
        let wrong = replies.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
        assert_eq!(refused.len() + wrong, 40, "only 401s and 429s");
        assert!(!refused.is_empty(), "40 strangers at once, one hashed at a time and one waiting: some must be refused");
        for reply in refused {
            assert_eq!(reply.body["type"], "urn:souk:problem:too-many-strangers", "{}", reply.text);
            assert_eq!(reply.headers["retry-after"], "1");
        }
        // Sign-ups are strangers too; a known account is not, and signs in.
        app.tokens("known@example.com", PASSWORD).await;
    }
}
