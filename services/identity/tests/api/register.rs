//! `POST /v1/auth/register`: accounts, the password policy, and hostile or malformed input
//! (always a clear problem+json 4xx, never a 500).

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, spawn};

/// Asserts a 422 that names exactly `fields` as invalid.
fn assert_invalid(reply: &Reply, fields: &[&str], what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what}: {}",
        reply.text
    );
    assert_eq!(reply.body["type"], "urn:souk:problem:validation", "{what}");
    let named: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no errors[]: {}", reply.text))
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, fields, "{what}: {}", reply.text);
}

souk_chassis::backend_tests! { spawn;

    async fn an_account_is_created_with_a_normalised_email(app) {
        let reply = app.register("  Ada.Lovelace@Example.COM ", PASSWORD, "  Ada Lovelace ").await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let account = reply.body.as_object().unwrap();
        let mut keys: Vec<&str> = account.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["email", "id", "name", "role"], "exactly these fields: {}", reply.text);
        assert_eq!(account["email"], "ada.lovelace@example.com");
        assert_eq!(account["name"], "Ada Lovelace");
        assert_eq!(account["role"], "user");
        let id = uuid::Uuid::parse_str(account["id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7);
    }

    async fn the_same_email_in_another_case_is_409(app) {
        app.registered("grace@example.com").await;
        for again in ["grace@example.com", "GRACE@Example.com", " Grace@EXAMPLE.com"] {
            let reply = app.register(again, "another fine passphrase", "Grace").await;
            assert_eq!(reply.status, StatusCode::CONFLICT, "{again}: {}", reply.text);
            assert_eq!(reply.body["type"], "urn:souk:problem:email-taken");
        }
    }

    async fn weak_passwords_are_422_on_the_password_field(app) {
        let email = "alan@example.com";
        let cases = [
            ("11 characters", "a".repeat(11)),
            ("1025 characters", "a".repeat(1025)),
            ("common", "Password1234".to_owned()),
            ("common, other case", "pASSWORD1234".to_owned()),
            ("common, all caps", "QWERTY123456".to_owned()),
            ("the email", email.to_owned()),
            ("the email in another case", "Alan@Example.COM".to_owned()),
        ];
        for (what, password) in cases {
            let reply = app.register(email, &password, "Alan").await;
            assert_invalid(&reply, &["password"], what);
        }
        // Nothing was created along the way, and the limits themselves are allowed.
        assert!(app.state.store.user_by_email(email).await.unwrap().is_none());
        let twelve = app.register(email, "lamp4-violin", "Alan").await;
        assert_eq!(twelve.status, StatusCode::CREATED, "{}", twelve.text);
        let longest = app.register("turing@example.com", &"c".repeat(1024), "Alan").await;
        assert_eq!(longest.status, StatusCode::CREATED, "{}", longest.text);
    }

    async fn a_password_equal_to_the_padded_email_is_refused(app) {
        // The email is trimmed before it is stored, so it must be trimmed before the comparison.
        let reply = app.register("  Hopper@Example.com ", "hopper@example.com", "Grace").await;
        assert_invalid(&reply, &["password"], "padded email");
    }

    async fn invalid_emails_and_names_are_422_on_their_fields(app) {
        for email in ["", "ada", "ada@example", "a b@example.com", "@example.com", &format!("{}@example.com", "a".repeat(250))] {
            let reply = app.register(email, PASSWORD, "Ada").await;
            assert_invalid(&reply, &["email"], email);
        }
        for name in ["", "   ", "bell\u{7}", &"n".repeat(101)] {
            let reply = app.register("ada@example.com", PASSWORD, name).await;
            assert_invalid(&reply, &["name"], name);
        }
        let reply = app.register("nope", "short", "").await;
        assert_invalid(&reply, &["email", "name", "password"], "every field at once");
        assert_eq!(reply.body["detail"], "3 fields are invalid");
    }

    async fn unknown_missing_or_mistyped_fields_are_422(app) {
        let bodies = [
            json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada", "role": "admin"}),
            json!({"email": "ada@example.com", "password": PASSWORD}),
            json!({"email": "ada@example.com", "password": 123_456_789_012_i64, "name": "Ada"}),
            json!("ada@example.com"),
            json!(null),
        ];
        for body in bodies {
            let reply = app.post("/v1/auth/register", &body).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text);
            assert_eq!(reply.body["type"], "urn:souk:problem:invalid-body", "{body}");
        }
        // In particular nobody made themselves an administrator.
        assert!(app.state.store.user_by_email("ada@example.com").await.unwrap().is_none());
    }

    async fn malformed_json_is_400_and_other_media_types_415(app) {
        for body in ["{", "{\"email\": }", "", "not json at all", "\u{feff}{}"] {
            let reply = app.post_raw("/v1/auth/register", "application/json", body.into()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}: {}", reply.text);
        }
        let valid = json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}).to_string();
        for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"] {
            let reply = app.post_raw("/v1/auth/register", content_type, valid.clone().into()).await;
            assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}: {}", reply.text);
        }
        for path in ["/v1/auth/login", "/v1/auth/refresh"] {
            let reply = app.post_raw(path, "application/json", b"{".to_vec()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
            let reply = app.post_raw(path, "text/plain", b"{}".to_vec()).await;
            assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        }
    }

    async fn a_two_mebibyte_body_is_413(app) {
        let padding = "x".repeat(2 * 1024 * 1024);
        let body = json!({"email": "ada@example.com", "password": padding, "name": "Ada"}).to_string();
        for path in ["/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh"] {
            let reply = app.post_raw(path, "application/json", body.clone().into()).await;
            assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {}", reply.text);
        }
    }

    async fn concurrent_registrations_of_one_email_make_one_account(app) {
        // Different spellings of one mailbox, all at once: the unique index decides.
        let spellings = ["race@example.com", "RACE@example.com", "Race@Example.com", " race@example.com"];
        let attempts = (0..20).map(|i| app.register(spellings[i % spellings.len()], PASSWORD, "Racer"));
        let replies = join_all(attempts).await;
        let created = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
        let conflicts = replies.iter().filter(|r| r.status == StatusCode::CONFLICT).count();
        assert_eq!((created, conflicts), (1, 19), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
        let winner = replies.iter().find(|r| r.status == StatusCode::CREATED).unwrap();
        let stored = app.state.store.user_by_email("race@example.com").await.unwrap().unwrap();
        assert_eq!(winner.body["id"], stored.id.as_str());
    }
}
