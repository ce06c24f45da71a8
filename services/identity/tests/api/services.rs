//! Service tokens: a configured service trades its secret for a token addressed to one service it
//! may call; that service's chassis verifier accepts it, and refuses user tokens and tokens for
//! other audiences.

use serde_json::json;
use souk_chassis::auth::{AuthConfig, AuthVerifier};
use souk_identity::config::ServiceClient;

use crate::helpers::spawn_with;

fn orders() -> ServiceClient {
    ServiceClient {
        secret: souk_chassis::Secret::new("orders-secret-0123456789"),
        audiences: vec!["inventory".into(), "payments".into()],
        feeds: Vec::new(),
    }
}

fn history() -> ServiceClient {
    ServiceClient {
        secret: souk_chassis::Secret::new("history-secret-0123456789"),
        audiences: Vec::new(),
        feeds: vec!["orders".into(), "payments".into()],
    }
}

async fn spawn(backend: souk_chassis::test_util::Backend) -> Option<crate::helpers::TestApp> {
    spawn_with(
        backend,
        |config| {
            config.services.insert("orders".into(), orders());
            config.services.insert("history".into(), history());
        },
        None,
    )
    .await
}

fn verifier(app: &crate::helpers::TestApp, audience: &str) -> AuthVerifier {
    AuthVerifier::new(AuthConfig {
        jwks_url: app.server.url("/.well-known/jwks.json"),
        service_audience: audience.into(),
        ..AuthConfig::default()
    })
}

souk_chassis::backend_tests! { spawn;

    async fn a_service_gets_a_token_only_its_audience_accepts(app) {
        let request = json!({ "client_id": "orders", "client_secret": "orders-secret-0123456789", "audience": "inventory" });
        let reply = app.post("/v1/auth/service-token", &request).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let token = reply.body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(reply.body["expires_in"], 300);

        let inventory = verifier(&app, "inventory");
        assert_eq!(inventory.verify_service(&token).await.unwrap().service, "orders");
        assert!(verifier(&app, "payments").verify_service(&token).await.is_err(), "another audience");
        assert!(inventory.verify(&token).await.is_err(), "not a user token");

        // A user's token is refused on internal endpoints.
        let user = json!({ "email": "u@example.com", "password": "a user passphrase here", "name": "U" });
        assert_eq!(app.post("/v1/auth/register", &user).await.status, 201);
        let login = app.post("/v1/auth/login", &json!({ "email": "u@example.com", "password": "a user passphrase here" })).await;
        let user_token = login.body["access_token"].as_str().unwrap();
        assert_eq!(inventory.verify_service(user_token).await.unwrap_err().status, 401);
    }

    async fn wrong_credentials_and_audiences_are_refused(app) {
        for (id, secret, audience, status) in [
            ("orders", "wrong-secret", "inventory", 401),
            ("orders", "", "inventory", 401),
            ("stranger", "orders-secret-0123456789", "inventory", 401),
            ("orders", "orders-secret-0123456789", "identity", 403),
        ] {
            let reply = app.post("/v1/auth/service-token", &json!({ "client_id": id, "client_secret": secret, "audience": audience })).await;
            assert_eq!(reply.status, status, "{id}/{audience}: {:?}", reply.body);
        }
    }
}

souk_chassis::backend_tests! { spawn;

    async fn a_feed_reader_gets_only_a_token_that_reads_the_feed(app) {
        let ask = |audience: &str, scope: Option<&str>| {
            let mut body = json!({ "client_id": "history", "client_secret": "history-secret-0123456789", "audience": audience });
            if let Some(scope) = scope {
                body["scope"] = scope.into();
            }
            body
        };
        // History may not ask for a token that calls payments (charges, refunds)…
        assert_eq!(app.post("/v1/auth/service-token", &ask("payments", None)).await.status, 403);
        assert_eq!(app.post("/v1/auth/service-token", &ask("payments", Some("admin"))).await.status, 403);
        assert_eq!(app.post("/v1/auth/service-token", &ask("inventory", Some("events:read"))).await.status, 403);
        // …only one that reads its feed: internal endpoints refuse it, the feed takes it.
        let reply = app.post("/v1/auth/service-token", &ask("payments", Some("events:read"))).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let token = reply.body["access_token"].as_str().unwrap();
        assert_eq!(crate::helpers::jwt_parts(token).1["scope"], "events:read");
        let payments = verifier(&app, "payments");
        assert_eq!(payments.verify_service(token).await.unwrap_err().status, 403);
        assert_eq!(payments.verify_feed_reader(token).await.unwrap().service, "history");
        // A caller of payments gets a full token, which reads the feed too.
        let full = app.post("/v1/auth/service-token", &json!({ "client_id": "orders", "client_secret": "orders-secret-0123456789", "audience": "payments" })).await;
        let full = full.body["access_token"].as_str().unwrap();
        assert!(crate::helpers::jwt_parts(full).1.get("scope").is_none());
        assert_eq!(payments.verify_service(full).await.unwrap().service, "orders");
        assert_eq!(payments.verify_feed_reader(full).await.unwrap().service, "orders");
    }
}
