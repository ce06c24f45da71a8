//! The catalog, the only source of prices: products looked up by id in one batch call
//! (`GET /v1/products?ids=…`), each answer (found or not found) reused for a short while.
//!
//! An answer that did not come (outage, timeout, 5xx, an unreadable body) is never cached: those
//! products are `Unavailable` on this read and asked about again on the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use souk_chassis::client::{ClientError, ServiceClient};
use tokio::time::Instant;
use uuid::Uuid;

use crate::domain::{Lookup, MAX_LINES, Money};

/// Cached answers kept at most; beyond this, stale ones are dropped (all of them if need be).
const MAX_CACHED: usize = 10_000;

/// The catalog's product list, as far as the cart reads it.
#[derive(Debug, Deserialize)]
struct ProductPage {
    items: Vec<Product>,
}

/// A product, as far as the cart reads it.
#[derive(Debug, Deserialize)]
struct Product {
    id: Uuid,
    name: String,
    price: Money,
}

/// Prices from the catalog, with a short-lived cache. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    client: ServiceClient,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<Uuid, Cached>>>,
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    lookup: Lookup,
}

impl Catalog {
    /// Asks the catalog through `client`; answers are reused for `ttl`.
    pub fn new(client: ServiceClient, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            cache: Arc::default(),
        }
    }

    /// What the catalog says about each of `ids`: from the cache when fresh, else asked.
    pub async fn lookup(&self, ids: &[Uuid]) -> HashMap<Uuid, Lookup> {
        let (mut found, missing) = self.cached(ids);
        for chunk in missing.chunks(MAX_LINES) {
            let answers = self.fetch(chunk).await;
            if let Some(answers) = &answers {
                self.remember(answers);
            }
            for &id in chunk {
                let lookup = answers
                    .as_ref()
                    .and_then(|a| a.get(&id).cloned())
                    .unwrap_or(Lookup::Unavailable);
                found.insert(id, lookup);
            }
        }
        found
    }

    /// The fresh cached answers, and the ids that must be asked about.
    fn cached(&self, ids: &[Uuid]) -> (HashMap<Uuid, Lookup>, Vec<Uuid>) {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for &id in ids {
            match cache.get(&id) {
                Some(entry) if entry.at.elapsed() < self.ttl => {
                    found.insert(id, entry.lookup.clone());
                }
                _ if !missing.contains(&id) => missing.push(id),
                _ => {}
            }
        }
        (found, missing)
    }

    fn remember(&self, answers: &HashMap<Uuid, Lookup>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() + answers.len() > MAX_CACHED {
            cache.retain(|_, entry| entry.at.elapsed() < self.ttl);
            if cache.len() + answers.len() > MAX_CACHED {
                cache.clear();
            }
        }
        let at = Instant::now();
        for (&id, lookup) in answers {
            let lookup = lookup.clone();
            cache.insert(id, Cached { at, lookup });
        }
    }

    /// One batch call: every id answered `Found` or `Missing`, or `None` when the catalog did not
    /// answer.
    async fn fetch(&self, ids: &[Uuid]) -> Option<HashMap<Uuid, Lookup>> {
        let list: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let path = format!("/v1/products?ids={}", list.join(","));
        let page: ProductPage = match self.client.get(&path, None).await {
            Ok(page) => page,
            Err(err) => {
                log_failure(&err);
                return None;
            }
        };
        let mut answers: HashMap<Uuid, Lookup> =
            ids.iter().map(|&id| (id, Lookup::Missing)).collect();
        for product in page.items {
            // Only what was asked: a catalog that ignored the filter must not price other lines.
            if let Some(slot) = answers.get_mut(&product.id) {
                *slot = Lookup::Found {
                    name: product.name,
                    price: product.price,
                };
            }
        }
        Some(answers)
    }
}

fn log_failure(err: &ClientError) {
    if err.is_unavailable() {
        tracing::warn!(error = %err, "catalog unavailable: cart lines go unpriced");
    } else {
        // The catalog answered, but not as agreed: a bug on one side, worth an error line.
        tracing::error!(error = %err, "catalog answered unexpectedly: cart lines go unpriced");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::routing::get;

    fn catalog(known: Uuid, calls: Arc<AtomicUsize>, ttl: Duration) -> Catalog {
        let router = Router::new().route(
            "/v1/products",
            get(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    let item = serde_json::json!({"id": known, "name": "mug", "sku": "KIT-1",
                        "price": {"amount": 1250, "currency": "USD"}});
                    souk_chassis::Json(serde_json::json!({"items": [item], "next_cursor": null}))
                }
            }),
        );
        let client = ServiceClient::in_process("catalog", router, Duration::from_secs(1));
        Catalog::new(client, ttl)
    }

    #[tokio::test(start_paused = true)]
    async fn answers_found_or_not_are_reused_until_they_expire() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (known, unknown) = (Uuid::now_v7(), Uuid::now_v7());
        let catalog = catalog(known, calls.clone(), Duration::from_secs(5));
        let first = catalog.lookup(&[known, unknown]).await;
        assert!(matches!(first[&known], Lookup::Found { ref name, .. } if name == "mug"));
        assert_eq!(first[&unknown], Lookup::Missing);
        assert_eq!(catalog.lookup(&[known, unknown]).await, first);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        catalog.lookup(&[unknown]).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_outage_is_unavailable_and_not_cached() {
        let router = Router::new().route(
            "/v1/products",
            get(|| async { http::StatusCode::SERVICE_UNAVAILABLE }),
        );
        let client = ServiceClient::in_process("catalog", router, Duration::from_secs(1));
        let catalog = Catalog::new(client, Duration::from_secs(60));
        let id = Uuid::now_v7();
        assert_eq!(catalog.lookup(&[id]).await[&id], Lookup::Unavailable);
        assert!(catalog.cache.lock().unwrap().is_empty());
    }
}
