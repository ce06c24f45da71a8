//! The authorisation matrix: every protected route of every service, for anonymous callers, two
//! users, an administrator and service tokens for the right and the wrong audience — through the
//! gateway and directly against the service's own port (defence in depth: the service checks too).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::Shop;

const ADMIN: (&str, &str) = ("root@example.com", "a very long admin passphrase");

/// (method, gateway path, service address, direct path, body, expected status per caller).
type Row<'a> = (Method, String, &'a str, String, Option<Value>, [u16; 6]);

struct Who {
    name: &'static str,
    token: Option<String>,
}

async fn post(shop: &Shop, base: &str, path: &str, body: &Value) -> Value {
    shop.client
        .post(format!("http://{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn login(shop: &Shop, identity: &str, email: &str, password: &str) -> String {
    let tokens = post(
        shop,
        identity,
        "/v1/auth/login",
        &json!({ "email": email, "password": password }),
    )
    .await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_admits_exactly_who_it_should() {
    let env = [
        ("SOUK_ADMIN_EMAIL", ADMIN.0),
        ("SOUK_ADMIN_PASSWORD", ADMIN.1),
        // A service allowed to call the catalog's internal endpoints (when it has some) — its
        // tokens must not pass as a user's or an administrator's anywhere.
        (
            "SOUK_IDENTITY__SERVICES__TESTER__SECRET",
            "tester-secret-0123456789",
        ),
        ("SOUK_IDENTITY__SERVICES__TESTER__AUDIENCES", "catalog"),
    ];
    let shop = Shop::start_with_env("up", &[], &env).await;
    let processes = shop.processes().await;
    let addr = |service: &str| {
        processes.iter().find(|p| p["service"] == service).unwrap()["addr"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (identity, catalog) = (addr("identity"), addr("catalog"));

    for (email, name) in [("a@example.com", "A"), ("b@example.com", "B")] {
        post(
            &shop,
            &identity,
            "/v1/auth/register",
            &json!({ "email": email, "password": "a user's long passphrase", "name": name }),
        )
        .await;
    }
    let service_token = |audience: &'static str| {
        let body = json!({ "client_id": "tester", "client_secret": "tester-secret-0123456789", "audience": audience });
        let identity = identity.clone();
        let shop = &shop;
        async move {
            post(shop, &identity, "/v1/auth/service-token", &body).await["access_token"]
                .as_str()
                .map(str::to_owned)
        }
    };
    let catalog_service = service_token("catalog").await;
    assert!(
        catalog_service.is_some(),
        "the configured service gets its token"
    );
    assert!(
        service_token("identity").await.is_none(),
        "but not for an audience it may not call"
    );
    let callers = [
        Who {
            name: "anonymous",
            token: None,
        },
        Who {
            name: "user A",
            token: Some(
                login(
                    &shop,
                    &identity,
                    "a@example.com",
                    "a user's long passphrase",
                )
                .await,
            ),
        },
        Who {
            name: "user B",
            token: Some(
                login(
                    &shop,
                    &identity,
                    "b@example.com",
                    "a user's long passphrase",
                )
                .await,
            ),
        },
        Who {
            name: "admin",
            token: Some(login(&shop, &identity, ADMIN.0, ADMIN.1).await),
        },
        Who {
            name: "service token for catalog",
            token: catalog_service,
        },
        Who {
            name: "garbage",
            token: Some("x.y.z".into()),
        },
    ];

    let page: Value = shop
        .get("/api/v1/products?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let product_id = page["items"][0]["id"].as_str().unwrap().to_owned();
    let new_product = |sku: &str| json!({ "sku": sku, "name": "Matrix Mug", "description": "", "category": "kitchen", "price": { "amount": 900, "currency": "USD" } });
    // (method, gateway path, service, direct path, body, expected status per caller in the order above)
    let routes: Vec<Row<'_>> = vec![
        (
            Method::GET,
            "/api/v1/me".into(),
            &identity,
            "/v1/me".into(),
            None,
            [401, 200, 200, 200, 401, 401],
        ),
        (
            Method::PUT,
            format!("/api/v1/admin/products/{product_id}"),
            &catalog,
            format!("/v1/admin/products/{product_id}"),
            Some(
                json!({ "sku": page["items"][0]["sku"], "name": "Renamed", "description": "", "category": "kitchen", "price": { "amount": 100, "currency": "USD" } }),
            ),
            [401, 403, 403, 200, 401, 401],
        ),
        (
            Method::POST,
            "/api/v1/admin/products".into(),
            &catalog,
            "/v1/admin/products".into(),
            Some(new_product("MUG-0001")),
            [401, 403, 403, 201, 401, 401],
        ),
    ];
    for (method, gateway_path, service, direct_path, body, expected) in &routes {
        for (hop, base, path) in [
            ("gateway", shop.gateway.to_string(), gateway_path),
            ("direct", (*service).to_owned(), direct_path),
        ] {
            for (who, want) in callers.iter().zip(expected) {
                let mut request = shop
                    .client
                    .request(method.clone(), format!("http://{base}{path}"));
                if let Some(token) = &who.token {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = body {
                    let mut body = body.clone();
                    if *method == Method::POST {
                        // A fresh SKU per successful create, so the admin's second create is not a conflict.
                        body["sku"] = json!(format!("MUG-{}{}", hop.len(), who.name.len()));
                    }
                    request = request.json(&body);
                }
                let status = request.send().await.unwrap().status().as_u16();
                assert_eq!(status, *want, "{} {method} {path} via {hop}", who.name);
            }
        }
    }
    // User A sees user A, user B sees user B: /me is always the caller's own account.
    for (who, email) in callers[1..3].iter().zip(["a@example.com", "b@example.com"]) {
        let me: Value = shop
            .client
            .get(shop_url(&shop, "/api/v1/me"))
            .bearer_auth(who.token.as_ref().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["email"], email);
    }
}

fn shop_url(shop: &Shop, path: &str) -> String {
    format!("http://{}{path}", shop.gateway)
}
