//! Before the measured phase: the products to shop for (and stock for them, when an
//! administrator is known), and the virtual users — each registers, signs in and registers a
//! test card once. After it: the orders the users placed.
//!
//! The gateway limits sign-ins and card registrations per client address. Against a loopback
//! shop each user signs up from an address of its own in 127.0.0.0/8 (as real shoppers come from
//! addresses of their own); every call also honours 429 `Retry-After`, so a remote shop is
//! simply signed up into more slowly.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

/// A product the users shop for.
#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub(crate) id: String,
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) category: String,
}

/// A signed-in virtual user with a card on file.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) token: String,
    pub(crate) payment_method: String,
}

/// An accepted order.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) id: String,
    pub(crate) token: String,
    /// When it was placed, since the start of the measured phase.
    pub(crate) at: Duration,
}

/// Every order accepted during a run.
#[derive(Debug, Default)]
pub(crate) struct Orders {
    accepted: Mutex<Vec<Accepted>>,
}

impl Orders {
    /// Notes an accepted order.
    pub(crate) fn accepted(&self, id: &str, user: &User, at: Duration) {
        if let Ok(mut all) = self.accepted.lock() {
            all.push(Accepted {
                id: id.to_owned(),
                token: user.token.clone(),
                at,
            });
        }
    }

    pub(crate) fn all(&self) -> Vec<Accepted> {
        self.accepted.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// How to reach the shop for setting up.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) base: String,
    /// Sign users up from addresses of their own (loopback targets only).
    pub(crate) spread_addresses: bool,
    pub(crate) admin: Option<(String, String)>,
}

impl Setup {
    /// The products of the first catalog page, and stock for each when an admin is known.
    pub(crate) async fn products(&self) -> Result<Vec<Product>, String> {
        let client = client(None)?;
        let (status, page) = call(
            &client,
            &self.base,
            Method::GET,
            "/api/v1/products?limit=100",
            None,
            None,
        )
        .await?;
        if status != 200 {
            return Err(format!("the product list answered {status}: {page}"));
        }
        let products: Vec<Product> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some(Product {
                    id: p["id"].as_str()?.to_owned(),
                    sku: p["sku"].as_str()?.to_owned(),
                    name: p["name"].as_str().unwrap_or_default().to_owned(),
                    category: p["category"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect();
        if products.is_empty() {
            return Err("the shop has no products: seed its catalog first".to_owned());
        }
        if let Some((email, password)) = &self.admin {
            let token = self.sign_in(&client, email, password).await?;
            for product in &products {
                self.stock(&client, &token, product).await?;
            }
        }
        Ok(products)
    }

    /// Puts plenty of stock on sale, so that no checkout is cancelled out of stock. Inventory
    /// learns new products from the catalog's events a moment after the shop starts. The count
    /// is set from the version read (`If-Match`), read again if the stock moved meanwhile.
    async fn stock(
        &self,
        client: &reqwest::Client,
        token: &str,
        product: &Product,
    ) -> Result<(), String> {
        let path = format!("/api/v1/admin/stock/{}", product.sku);
        let body = json!({ "quantity": 1_000_000 });
        for _ in 0..300 {
            let (status, read) =
                call(client, &self.base, Method::GET, &path, Some(token), None).await?;
            match status {
                200 => {}
                404 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                _ => return Err(format!("stock of {}: {status} {read}", product.sku)),
            }
            let version = format!("\"{}\"", read["version"]);
            let (status, answer) = call_with(
                client,
                &self.base,
                Method::PUT,
                &path,
                Some(token),
                &[("if-match", version.as_str())],
                Some(&body),
            )
            .await?;
            match status {
                200 | 204 => return Ok(()),
                412 => continue,
                _ => return Err(format!("stock of {}: {status} {answer}", product.sku)),
            }
        }
        Err(format!(
            "inventory does not know {} after 30 s",
            product.sku
        ))
    }

    /// Registers, signs in and registers a test card for `count` users, `parallel` at a time.
    pub(crate) async fn users(&self, count: usize, run: &str) -> Result<Vec<User>, String> {
        let mut users = Vec::with_capacity(count);
        let parallel = 4;
        for chunk in (0..count).collect::<Vec<_>>().chunks(parallel) {
            let batch = chunk.iter().map(|&n| self.user(n, run));
            for user in futures::future::join_all(batch).await {
                users.push(user?);
            }
        }
        Ok(users)
    }

    async fn user(&self, n: usize, run: &str) -> Result<User, String> {
        let source = self.spread_addresses.then(|| source_address(n));
        let client = client(source)?;
        let email = format!("bench-{run}-{n}@example.com");
        let password = "a long benchmark passphrase";
        let register =
            json!({ "email": email, "password": password, "name": format!("Bench {n}") });
        let (status, answer) = call(
            &client,
            &self.base,
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&register),
        )
        .await?;
        if status != 201 && status != 409 {
            return Err(format!("registering {email}: {status} {answer}"));
        }
        let token = self.sign_in(&client, &email, password).await?;
        let card = json!({ "card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123" });
        let (status, answer) = call(
            &client,
            &self.base,
            Method::POST,
            "/api/v1/payment-methods",
            Some(&token),
            Some(&card),
        )
        .await?;
        let payment_method = answer["id"]
            .as_str()
            .filter(|_| status == 201)
            .ok_or_else(|| format!("registering a card: {status} {answer}"))?;
        Ok(User {
            token,
            payment_method: payment_method.to_owned(),
        })
    }

    async fn sign_in(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> Result<String, String> {
        let login = json!({ "email": email, "password": password });
        let (status, answer) = call(
            client,
            &self.base,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&login),
        )
        .await?;
        answer["access_token"]
            .as_str()
            .filter(|_| status == 200)
            .map(str::to_owned)
            .ok_or_else(|| format!("signing in as {email}: {status} {answer}"))
    }
}

/// The n-th user's own loopback address: 127.1.x.y.
fn source_address(n: usize) -> IpAddr {
    let n = u32::try_from(n).unwrap_or(0);
    let [_, _, x, y] = (n + 1).to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 1, x, y))
}

fn client(source: Option<IpAddr>) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .local_address(source)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// One setup call, waiting out 429s as `Retry-After` says (for at most five minutes).
async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    call_with(client, base, method, path, token, &[], body).await
}

/// [`call`] with extra request headers.
async fn call_with(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    for _ in 0..300 {
        let mut request = client.request(method.clone(), format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        if status == 429 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.clamp(1, 60))).await;
            continue;
        }
        let answer = response.json().await.unwrap_or(Value::Null);
        return Ok((status, answer));
    }
    Err(format!(
        "{method} {path}: still rate-limited after five minutes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_gets_a_loopback_address_of_its_own() {
        let a = source_address(0);
        let b = source_address(300);
        assert!(a.is_loopback() && b.is_loopback());
        assert_ne!(a, b);
        assert_eq!(b, IpAddr::V4(Ipv4Addr::new(127, 1, 1, 45)));
    }
}
