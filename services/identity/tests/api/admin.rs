//! The first administrator, named at start (`SOUK_ADMIN_EMAIL` / `SOUK_ADMIN_PASSWORD`).

use reqwest::StatusCode;
use souk_identity::SetupError;
use souk_identity::domain::Role;

use crate::helpers::{
    ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, admin, jwt_parts, spawn, spawn_with_admin,
};

souk_chassis::backend_tests! { spawn_with_admin;

    async fn the_named_administrator_is_created_and_can_log_in(app) {
        let (access, _) = app.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(jwt_parts(&access).1["role"], "admin");
        let me = app.me(&access).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text);
        assert_eq!(me.body["role"], "admin");
        assert_eq!(me.body["email"], ADMIN_EMAIL);
        let stored = app.state.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
        assert!(stored.password_hash.starts_with("$argon2id$"), "hashed like everyone's");
        assert!(!stored.password_hash.contains(ADMIN_PASSWORD));
        // Registering the same email is refused like any taken email.
        let reply = app.register(ADMIN_EMAIL, PASSWORD, "Mallory").await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    }

    async fn starting_again_with_the_same_administrator_is_fine(app) {
        let first = app.state.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
        for _ in 0..2 {
            app.build_again(Some(admin(ADMIN_EMAIL, ADMIN_PASSWORD))).await.expect("a restart with the same administrator");
        }
        let again = app.state.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
        assert_eq!((again.id, again.role, again.password_hash), (first.id, Role::Admin, first.password_hash));
        app.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    }
}

souk_chassis::backend_tests! { spawn;

    async fn an_invalid_administrator_stops_the_start(app) {
        for (what, email, password) in [
            ("short password", "boss@example.com", "tooshort"),
            ("common password", "boss@example.com", "Password1234"),
            ("the email as password", "boss@example.com", "Boss@Example.com"),
            ("invalid email", "not-an-email", "a perfectly long passphrase"),
        ] {
            match app.build_again(Some(admin(email, password))).await {
                Err(SetupError::Admin(message)) => assert!(!message.contains(password), "{what}: the password is not echoed: {message}"),
                other => panic!("{what}: expected SetupError::Admin, got {:?}", other.map(|_| "a running service")),
            }
        }
        assert!(app.state.store.user_by_email("boss@example.com").await.unwrap().is_none(), "nobody was created");
    }

    async fn an_account_registered_with_the_admin_address_before_start_is_not_promoted(app) {
        // The attack: the administrator's address is known (docs, a guess), nobody proves an
        // email at registration, so an attacker registers it first with a password of theirs.
        let attacker = app.registered("boss@example.com").await;
        // The operator then starts the shop naming that address as the administrator.
        match app.build_again(Some(admin(" Boss@Example.com", ADMIN_PASSWORD))).await {
            Err(SetupError::Admin(message)) => {
                assert!(message.contains("boss@example.com") && message.contains("refusing"), "{message}");
                assert!(!message.contains(ADMIN_PASSWORD), "the password is not echoed: {message}");
            }
            other => panic!("expected the start to be refused, got {:?}", other.map(|_| "a running service")),
        }
        // The attacker's account is still a user, and signs in as one.
        let stored = app.state.store.user_by_email("boss@example.com").await.unwrap().unwrap();
        assert_eq!((stored.id.as_str(), stored.role), (attacker["id"].as_str().unwrap(), Role::User));
        let (access, _) = app.tokens("boss@example.com", PASSWORD).await;
        assert_eq!(jwt_parts(&access).1["role"], "user");
        // And the refused start left nothing behind: a start with another address works.
        app.build_again(Some(admin("ops@example.com", ADMIN_PASSWORD))).await.expect("another address starts");
    }

    async fn an_existing_account_with_the_admin_password_is_the_operators_and_is_promoted(app) {
        // The operator registered the address through the shop with the same password first.
        assert_eq!(app.register("ops@example.com", ADMIN_PASSWORD, "Ops").await.status, StatusCode::CREATED);
        app.build_again(Some(admin("ops@example.com", ADMIN_PASSWORD))).await.expect("promotes");
        let (access, _) = app.tokens("ops@example.com", ADMIN_PASSWORD).await;
        assert_eq!(jwt_parts(&access).1["role"], "admin");
    }
}
