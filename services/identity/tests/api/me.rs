//! `GET /v1/me`: the caller's account for a valid access token, 401 with a challenge for
//! anything else (missing, forged, expired, not yet valid, for someone else, algorithm tricks).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::Value;
use souk_identity::domain::Role;
use souk_identity::keys::{KeySet, StoredKey};
use souk_identity::tokens;

use crate::helpers::{PASSWORD, TestApp, assert_unauthorized, claims, now, sign, sign_with, spawn};

/// `claims(sub)` with `changes` applied.
fn claims_with(sub: &str, changes: &[(&str, Value)]) -> Value {
    let mut claims = claims(sub);
    for (name, value) in changes {
        claims[*name] = value.clone();
    }
    claims
}

/// The account id of a fresh user, and the app's keys.
async fn user(app: &TestApp) -> (String, KeySet) {
    let account = app.registered("ada@example.com").await;
    (account["id"].as_str().unwrap().to_owned(), app.state.keys())
}

souk_chassis::backend_tests! { spawn;

    async fn a_valid_token_gets_the_callers_account(app) {
        let account = app.registered("Ada@Example.com").await;
        let (access, _) = app.tokens("ada@example.com", PASSWORD).await;
        let reply = app.me(&access).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body, account, "the same account as at registration");
        assert_eq!(reply.body["role"], "user");
        // Tokens this test signs are accepted when (and only when) they are right: the
        // forgeries below fail for their flaw, not for the way they were made.
        let id = account["id"].as_str().unwrap();
        let reply = app.me(&sign(&app.state.keys(), &claims(id))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        // Expiry and not-before allow 30 s of clock skew.
        let skewed = claims_with(id, &[("exp", (now() - 10).into()), ("nbf", (now() + 10).into())]);
        let reply = app.me(&sign(&app.state.keys(), &skewed)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    async fn a_missing_or_malformed_authorization_is_401(app) {
        let (_, _) = user(&app).await;
        let (access, _) = app.tokens("ada@example.com", PASSWORD).await;
        let reply = app.get("/v1/me", None).await;
        assert_unauthorized(&reply, "no Authorization header");
        for header in ["", "Bearer", "Bearer ", "Basic YWRhOnBhc3N3b3Jk", "Bearer garbage", "Bearer a.b.c", &format!("Token {access}"), &format!("Bearer {access}x")] {
            let reply = app.get("/v1/me", Some(header)).await;
            assert_unauthorized(&reply, header);
        }
    }

    async fn a_token_signed_by_another_key_is_401(app) {
        let (id, keys) = user(&app).await;
        let sealer = crate::helpers::sealer();
        let foreign = KeySet::from_stored(&[StoredKey::generate(now(), &sealer).unwrap()], &sealer).unwrap();
        let token = tokens::issue_access(&foreign, "souk-identity", "souk", &id, Role::Admin, now(), 900).unwrap();
        assert_unauthorized(&app.me(&token).await, "a key identity never published");
        // The same forgery claiming one of identity's key ids.
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.signer.0.clone());
        let spoofed = sign_with(&header, &claims(&id), &foreign.signer.1);
        assert_unauthorized(&app.me(&spoofed).await, "a foreign key under our kid");
        // No kid at all.
        let bare = sign_with(&Header::new(Algorithm::EdDSA), &claims(&id), &keys.signer.1);
        assert_unauthorized(&app.me(&bare).await, "no kid");
    }

    async fn expired_and_not_yet_valid_tokens_are_401(app) {
        let (id, keys) = user(&app).await;
        let now = now();
        let expired = claims_with(&id, &[("exp", (now - 60).into()), ("iat", (now - 960).into()), ("nbf", (now - 960).into())]);
        assert_unauthorized(&app.me(&sign(&keys, &expired)).await, "expired a minute ago");
        let issued_long_ago = tokens::issue_access(&keys, "souk-identity", "souk", &id, Role::User, now - 3600, 900).unwrap();
        assert_unauthorized(&app.me(&issued_long_ago).await, "issued an hour ago");
        let early = claims_with(&id, &[("nbf", (now + 3600).into())]);
        assert_unauthorized(&app.me(&sign(&keys, &early)).await, "not valid for an hour");
        let no_exp = {
            let mut claims = claims(&id);
            claims.as_object_mut().unwrap().remove("exp");
            claims
        };
        assert_unauthorized(&app.me(&sign(&keys, &no_exp)).await, "no exp");
    }

    async fn tokens_for_another_audience_or_issuer_are_401(app) {
        let (id, keys) = user(&app).await;
        for (what, changes) in [
            ("audience", vec![("aud", "catalog".into())]),
            ("issuer", vec![("iss", "evil-identity".into())]),
            ("audience list", vec![("aud", serde_json::json!(["catalog"]))]),
            ("role", vec![("role", "superuser".into())]),
        ] {
            assert_unauthorized(&app.me(&sign(&keys, &claims_with(&id, &changes))).await, what);
        }
        let via_issue = tokens::issue_access(&keys, "souk-identity", "catalog", &id, Role::User, now(), 900).unwrap();
        assert_unauthorized(&app.me(&via_issue).await, "issue_access for another audience");
        let via_issue = tokens::issue_access(&keys, "someone-else", "souk", &id, Role::User, now(), 900).unwrap();
        assert_unauthorized(&app.me(&via_issue).await, "issue_access by another issuer");
    }

    async fn alg_none_and_hmac_with_the_public_key_are_401(app) {
        let (id, keys) = user(&app).await;
        let kid = keys.signer.0.clone();
        let body = URL_SAFE_NO_PAD.encode(claims(&id).to_string());
        for alg in ["none", "None", "NONE"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#));
            assert_unauthorized(&app.me(&format!("{header}.{body}.")).await, alg);
        }
        // The classic confusion: HMAC keyed with the public key, which anyone can read.
        let jwks = app.jwks().await;
        let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
        let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
        for (what, secret) in [("x as text", x.as_bytes().to_vec()), ("x decoded", raw)] {
            for alg in [Algorithm::HS256, Algorithm::HS512] {
                let mut header = Header::new(alg);
                header.kid = Some(kid.clone());
                let token = sign_with(&header, &claims(&id), &EncodingKey::from_secret(&secret).unwrap());
                assert_unauthorized(&app.me(&token).await, &format!("{alg:?} with {what}"));
            }
        }
    }

    async fn a_valid_token_for_a_vanished_account_is_401(app) {
        let (_, keys) = user(&app).await;
        let token = sign(&keys, &claims(&uuid::Uuid::now_v7().to_string()));
        assert_unauthorized(&app.me(&token).await, "no such account");
    }
}
