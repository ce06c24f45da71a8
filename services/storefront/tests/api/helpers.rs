//! The harness: a fake gateway and a storefront in front of it.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::{Value, json};
use souk_chassis::Json;
use souk_chassis::client::ClientConfig;
use souk_chassis::test_util::TestServer;

/// A product whose availability the fake gateway reports as degraded.
pub const DEGRADED: &str = "01930000-0000-7000-8000-000000000002";
/// A product with stock.
pub const STOCKED: &str = "01930000-0000-7000-8000-000000000001";

/// What the fake gateway saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// `X-Forwarded-For` of every call.
    pub forwarded_for: Vec<String>,
    /// `Authorization` of every call.
    pub authorization: Vec<String>,
    /// Cards registered.
    pub cards: usize,
    /// Orders placed: `Idempotency-Key` and body.
    pub orders: Vec<(String, String)>,
    /// Bodies of `POST /api/v1/auth/logout`.
    pub logouts: Vec<String>,
}

/// A storefront in front of a fake gateway.
pub struct Shop {
    pub storefront: TestServer,
    pub _gateway: TestServer,
    pub seen: Arc<Mutex<Seen>>,
    pub client: reqwest::Client,
}

impl Shop {
    pub async fn start() -> Shop {
        souk_chassis::test_util::init_test_logging();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let gateway = TestServer::spawn(fake_gateway(Arc::clone(&seen))).await;
        let config = souk_storefront::Config {
            gateway: ClientConfig {
                url: format!("http://{}", gateway.addr),
                timeout_ms: 2000,
            },
            ..souk_storefront::Config::default()
        };
        let storefront = souk_storefront::build(&config).unwrap();
        let storefront = TestServer::spawn(storefront.router).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        Shop {
            storefront,
            _gateway: gateway,
            seen,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.storefront.url(path)
    }

    /// GET `path` with `cookies` (a `Cookie` header value).
    pub async fn get(&self, path: &str, cookies: &str) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if !cookies.is_empty() {
            request = request.header("cookie", cookies);
        }
        request.send().await.unwrap()
    }

    /// POST a form to `path` with `cookies`.
    pub async fn post(
        &self,
        path: &str,
        cookies: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("cookie", cookies)
            .header("x-forwarded-for", "203.0.113.9")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// A fresh browser's CSRF cookie (as a `Cookie` header value) and the token of its forms.
    pub async fn csrf(&self) -> (String, String) {
        let page = self.get("/signin", "").await;
        let cookie = set_cookies(&page)
            .into_iter()
            .find(|c| c.starts_with("souk_csrf="))
            .unwrap();
        let pair = cookie.split(';').next().unwrap().to_owned();
        let html = page.text().await.unwrap();
        (pair, form_token(&html))
    }

    /// A browser that signed in (the fake gateway's tokens `good` and `r1`): its cookies (as a
    /// `Cookie` header value) and the CSRF token of the forms of its next page.
    pub async fn session(&self) -> (String, String) {
        let (cookie, token) = self.csrf().await;
        let signed_in = self
            .post(
                "/signin",
                &cookie,
                &[
                    ("csrf", &token),
                    ("email", "ada@example.com"),
                    ("password", "pw"),
                ],
            )
            .await;
        assert_eq!(signed_in.status(), 303);
        let cookies = jar(&cookie, &set_cookies(&signed_in));
        let page = self.get("/", &cookies).await;
        assert_eq!(page.status(), 200);
        let cookies = jar(&cookies, &set_cookies(&page));
        let token = form_token(&page.text().await.unwrap());
        (cookies, token)
    }
}

/// The `Cookie` header a browser sends after `set` arrived for a browser that sent `cookies`:
/// set values replace earlier ones of the same name, cleared ones (`Max-Age=0`) go.
pub fn jar(cookies: &str, set: &[String]) -> String {
    let mut pairs: Vec<(String, String)> = cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for cookie in set {
        let (name, value) = cookie.split(';').next().unwrap().split_once('=').unwrap();
        pairs.retain(|(k, _)| k != name);
        if !cookie.contains("Max-Age=0") {
            pairs.push((name.to_owned(), value.to_owned()));
        }
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The value of cookie `name` in a `Cookie` header value.
pub fn cookie_value(cookies: &str, name: &str) -> String {
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// Every `Set-Cookie` of a response.
pub fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The CSRF token in a page's first form.
pub fn form_token(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn product(id: &str, name: &str) -> Value {
    json!({
        "id": id, "sku": "KIT-0001", "name": name, "description": "Heavy and even.",
        "category": "kitchen", "price": {"amount": 3499, "currency": "USD"},
        "image_url": "/assets/products/kit-0001.svg"
    })
}

/// The order every checkout places.
pub const ORDER: &str = "01930000-0000-7000-8000-0000000000bb";

fn fake_gateway(seen: Arc<Mutex<Seen>>) -> Router {
    let cards = Arc::clone(&seen);
    let orders = Arc::clone(&seen);
    let logouts = Arc::clone(&seen);
    Router::new()
        .route(
            "/api/v1/payment-methods",
            post(move || async move {
                let n = {
                    let mut seen = cards.lock().unwrap();
                    seen.cards += 1;
                    seen.cards
                };
                (
                    StatusCode::CREATED,
                    Json(json!({"id": format!("pm-{n}"), "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031})),
                )
            }),
        )
        .route(
            "/api/v1/orders",
            post(move |headers: http::HeaderMap, body: String| async move {
                let key = headers
                    .get("idempotency-key")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                orders.lock().unwrap().orders.push((key, body));
                (StatusCode::ACCEPTED, Json(json!({"id": ORDER, "status": "pending"})))
            }),
        )
        .route(
            "/api/v1/categories",
            get(|| async {
                Json(json!({"items": [{"slug": "kitchen", "name": "Kitchen & Dining",
                    "description": "Pots and pans.", "product_count": 2}], "next_cursor": null}))
            }),
        )
        .route(
            "/api/v1/products",
            get(|request: Request| async move {
                // A search for "broken" stands for a catalog that cannot answer.
                if request.uri().query().unwrap_or("").contains("q=broken") {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                Json(json!({"items": [product(STOCKED, "Cast Iron Skillet")], "next_cursor": "abc"}))
                    .into_response()
            }),
        )
        .route(
            "/api/v1/products/{id}/details",
            get(|request: Request| async move {
                let degraded = request.uri().path().contains(DEGRADED);
                let body = if degraded {
                    json!({"product": product(DEGRADED, "Dutch Oven"), "availability": null, "degraded": ["availability"]})
                } else {
                    json!({"product": product(STOCKED, "Cast Iron Skillet"), "availability": {"in_stock": true, "quantity": 40}, "degraded": []})
                };
                Json(body)
            }),
        )
        .route(
            "/api/v1/auth/login",
            post(|| async {
                Json(json!({"access_token": "good", "refresh_token": "r1", "token_type": "Bearer", "expires_in": 900}))
            }),
        )
        .route(
            "/api/v1/auth/logout",
            post(move |body: String| async move {
                logouts.lock().unwrap().logouts.push(body);
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/api/v1/auth/register",
            post(|| async {
                let problem = json!({"type": "urn:souk:problem:validation", "title": "Invalid input",
                    "status": 422, "errors": [{"field": "password", "message": "is one of the most common passwords"}]});
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    [("content-type", "application/problem+json")],
                    problem.to_string(),
                )
            }),
        )
        .route(
            "/api/v1/auth/refresh",
            post(|body: String| async move {
                if body.contains("\"r1\"") {
                    Json(json!({"access_token": "good", "refresh_token": "r2", "token_type": "Bearer", "expires_in": 900}))
                        .into_response()
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                }
            }),
        )
        .route(
            "/api/v1/cart",
            get(|request: Request| async move {
                let authorized = request
                    .headers()
                    .get("authorization")
                    .is_some_and(|v| v == "Bearer good");
                if !authorized {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                Json(json!({"items": [{"product_id": STOCKED, "name": "Cast Iron Skillet", "quantity": 2,
                    "unit_price": {"amount": 3499, "currency": "USD"}, "line_total": {"amount": 6998, "currency": "USD"},
                    "status": "ok"}], "total": {"amount": 6998, "currency": "USD"}, "degraded": []}))
                .into_response()
            }),
        )
        .route(
            "/api/v1/orders/{id}",
            get(|request: Request| async move {
                match request.headers().get("authorization") {
                    Some(v) if v == "Bearer good" => StatusCode::NOT_FOUND,
                    _ => StatusCode::UNAUTHORIZED,
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(seen, record))
}

/// Notes the headers every call to the fake gateway carried.
async fn record(
    State(seen): State<Arc<Mutex<Seen>>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let (forwarded_for, authorization) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        (header("x-forwarded-for"), header("authorization"))
    };
    {
        let mut seen = seen.lock().unwrap();
        seen.forwarded_for.push(forwarded_for);
        seen.authorization.push(authorization);
    }
    next.run(request).await
}
