//! Access-token verification for routes whose policy is `user` or `admin`.
//!
//! Keys come from identity's JWKS (an upstream named in `[auth]`), fetched at start, again every
//! `jwks_refresh_secs`, and on a token with an unknown key id (at most once every 5 s, so a flood
//! of forged key ids cannot hammer identity). Only EdDSA with a published key id verifies, so
//! `alg: none` and HMAC keyed with the public key are refused; issuer, audience, expiry and
//! not-before are checked. Each proxy thread keeps the tokens it verified, until they expire, so
//! signature checks stay off the hot path. A token naming a key the gateway lacks while the last
//! fetch failed is [`Refusal::Unavailable`] (a 503), not a bad token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::upstream::Upstream;

/// Least time between two key fetches triggered by unknown key ids.
const MIN_REFETCH_MS: u64 = 5_000;
/// Verified tokens remembered per proxy thread.
const CACHE_CAPACITY: usize = 10_000;

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account id.
    pub sub: String,
    /// `user` or `admin`.
    pub role: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that does not verify (bad signature, algorithm, key, issuer, audience, time).
    Invalid,
    /// A token naming a key the gateway does not have and could not fetch (the JWKS upstream
    /// did not answer): it may well be good, so it is neither accepted nor refused.
    Unavailable,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    exp: i64,
}

#[derive(Debug, Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Debug, Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    x: Option<String>,
}

/// Verifies access tokens against identity's published keys.
pub struct Verifier {
    /// Where keys come from and what tokens must say.
    pub config: AuthConfig,
    keys: ArcSwap<HashMap<String, DecodingKey>>,
    fetched_at_ms: AtomicU64,
    /// Whether the last fetch of the key set failed.
    fetch_failed: AtomicBool,
    client: Client<HttpConnector, Empty<Bytes>>,
    clock: Clock,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with no keys yet (the first fetch happens on the admin thread at start).
    pub fn new(config: AuthConfig, clock: Clock) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        Self {
            config,
            keys: ArcSwap::from_pointee(HashMap::new()),
            fetched_at_ms: AtomicU64::new(0),
            fetch_failed: AtomicBool::new(false),
            client: Client::builder(TokioExecutor::new()).build(connector),
            clock,
            validation,
        }
    }

    /// Fetches the key set from the JWKS upstream (over a socket, or from its router when it is
    /// served in this process); keeps the old keys when that fails.
    pub async fn fetch(
        &self,
        upstream: &Upstream,
        in_process: Option<&axum::Router>,
    ) -> Result<usize, String> {
        self.fetched_at_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
        let set = self.fetch_set(upstream, in_process).await;
        self.fetch_failed.store(set.is_err(), Ordering::Relaxed);
        let set = set?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .into_iter()
            .filter(|k| k.kty == "OKP" && k.crv.as_deref() == Some("Ed25519"))
            .filter_map(|k| Some((k.kid?, DecodingKey::from_ed_components(&k.x?).ok()?)))
            .collect();
        let count = keys.len();
        self.keys.store(std::sync::Arc::new(keys));
        Ok(count)
    }

    async fn fetch_set(
        &self,
        upstream: &Upstream,
        in_process: Option<&axum::Router>,
    ) -> Result<JwkSet, String> {
        let body = match in_process {
            Some(router) => self.fetch_in_process(router).await?,
            None => self.fetch_over_http(upstream).await?,
        };
        serde_json::from_slice(&body).map_err(|e| format!("the JWKS is not a key set: {e}"))
    }

    async fn fetch_over_http(&self, upstream: &Upstream) -> Result<Bytes, String> {
        let endpoint = upstream
            .pick(None)
            .map_err(|_| "the JWKS upstream has no endpoint".to_owned())?;
        let uri: http::Uri = format!("http://{}{}", endpoint.addr, self.config.jwks_path)
            .parse()
            .map_err(|e| format!("{e}"))?;
        let response = tokio::time::timeout(Duration::from_secs(2), self.client.get(uri))
            .await
            .map_err(|_| "the JWKS did not arrive in time".to_owned())?
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the JWKS answered {}", response.status()));
        }
        Limited::read(response.into_body()).await
    }

    async fn fetch_in_process(&self, router: &axum::Router) -> Result<Bytes, String> {
        use tower::ServiceExt;
        let request = http::Request::get(self.config.jwks_path.as_str())
            .body(axum::body::Body::empty())
            .map_err(|e| e.to_string())?;
        let Ok(response) = router.clone().oneshot(request).await;
        if !response.status().is_success() {
            return Err(format!("the JWKS answered {}", response.status()));
        }
        axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .map_err(|e| format!("cannot read the JWKS: {e}"))
    }

    /// Whether the periodic refresh is due.
    pub fn refresh_due(&self) -> bool {
        let last = self.fetched_at_ms.load(Ordering::Relaxed);
        last == 0 || self.clock.now_ms() >= last + self.config.jwks_refresh_secs * 1000
    }

    /// Verifies the bearer token in `headers`, using and filling `cache`.
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        cache: &TokenCache,
        upstream: &Upstream,
        in_process: Option<&axum::Router>,
    ) -> Result<Caller, Refusal> {
        let token = bearer(headers).ok_or(Refusal::Missing)?;
        let now = unix_now();
        if let Some(caller) = cache.get(token, now) {
            return Ok(caller);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(Refusal::Invalid);
        }
        let kid = header.kid.ok_or(Refusal::Invalid)?;
        if !self.keys.load().contains_key(&kid) {
            // A key we have not seen: identity may have rotated. Look again, but not too often.
            let last = self.fetched_at_ms.load(Ordering::Relaxed);
            let never = last == 0 || self.keys.load().is_empty();
            if (never || self.clock.now_ms() >= last + MIN_REFETCH_MS)
                && let Err(err) = self.fetch(upstream, in_process).await
            {
                tracing::warn!(%err, "cannot fetch the JWKS");
            }
        }
        let keys = self.keys.load();
        let key = keys.get(&kid).ok_or_else(|| {
            if self.fetch_failed.load(Ordering::Relaxed) {
                Refusal::Unavailable
            } else {
                Refusal::Invalid
            }
        })?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|_| Refusal::Invalid)?
            .claims;
        let caller = Caller {
            sub: claims.sub,
            role: claims.role,
            exp: claims.exp,
        };
        cache.put(token, &caller);
        Ok(caller)
    }
}

/// The token in `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() && token.len() <= 4096)
        .then(|| token.trim())
}

fn unix_now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// One proxy thread's verified tokens (the lock is never contended: one thread uses it).
#[derive(Debug, Default)]
pub struct TokenCache(Mutex<HashMap<String, Caller>>);

impl TokenCache {
    fn get(&self, token: &str, now: i64) -> Option<Caller> {
        let cache = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(token).filter(|c| c.exp > now).cloned()
    }

    fn put(&self, token: &str, caller: &Caller) {
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            // Crude but bounded: forget everything rather than grow; re-verifying is cheap enough.
            cache.clear();
        }
        cache.insert(token.to_owned(), caller.clone());
    }
}

/// Reads at most 64 KiB of a body.
struct Limited;

impl Limited {
    async fn read(body: hyper::body::Incoming) -> Result<Bytes, String> {
        let limited = http_body_util::Limited::new(body, 64 * 1024);
        limited
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| format!("cannot read the JWKS: {e}"))
    }
}
