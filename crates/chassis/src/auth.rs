//! Verifying callers inside a service — defence in depth behind the gateway's own check.
//!
//! A service is handed an [`AuthVerifier`] (keys from identity's JWKS, fetched from start-up on by
//! [`AuthVerifier::fetch_keys_in_background`], again on an unknown key id at most every 5 s, and
//! every 5 minutes) and takes a [`Caller`] in the handlers that need one. A missing or bad token
//! is a 401 problem with `WWW-Authenticate`; [`Caller::require_admin`] turns a user into a 403.
//! Only EdDSA with a published key verifies, with the configured issuer and audience, unexpired
//! and not before `nbf`.
//!
//! When the key a token names is not known because identity's key set could not be fetched (not
//! up yet, or too slow), the token may well be good: the answer is a 503 with `Retry-After`, never
//! a 401 that tells a client to throw its session away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// Least time between two fetches caused by unknown key ids.
const MIN_REFETCH: Duration = Duration::from_secs(5);
/// Least time between two fetches while no key is known at all (identity not up yet): short,
/// and waited out rather than refused, so a service started before identity serves as soon as
/// identity answers.
const MIN_REFETCH_WITHOUT_KEYS: Duration = Duration::from_millis(250);
/// Keys are fetched again this often anyway.
const MAX_AGE: Duration = Duration::from_secs(300);
/// The longest pause between two background fetches while no key is known.
const MAX_BACKGROUND_PAUSE: Duration = Duration::from_secs(5);
/// A fetch of the key set gives up after this long connecting, and this long in all (in the
/// background)...
const FETCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// ...or this long when a request waits on it: under the callers' own timeouts (2 s between
/// services), so that a slow identity is a 503 with `Retry-After`, not a caller's timeout.
const REQUEST_FETCH_TIMEOUT: Duration = Duration::from_millis(1500);
/// What a 503 asks the client to wait, in seconds, when the keys could not be fetched.
const RETRY_AFTER_SECONDS: u32 = 1;
/// Seconds of clock skew allowed on `exp` and `nbf`.
const LEEWAY: u64 = 30;
/// Tokens remembered as verified, at most (about 400 bytes each).
const REMEMBERED: usize = 4096;
/// Longer tokens are verified every time rather than remembered.
const REMEMBERED_TOKEN_BYTES: usize = 2048;

/// Where keys come from and what tokens must say (`[<service>.auth]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Identity's key set, e.g. `http://127.0.0.1:8080/.well-known/jwks.json` (through the gateway).
    pub jwks_url: String,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` user tokens must carry.
    pub audience: String,
    /// The `aud` service tokens must carry to reach this service's internal endpoints: its own
    /// name. Empty when it has none.
    pub service_audience: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwks_url: "http://127.0.0.1:8080/.well-known/jwks.json".into(),
            issuer: "souk-identity".into(),
            audience: "souk".into(),
            service_audience: String::new(),
        }
    }
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account id.
    pub id: String,
    /// `user` or `admin`.
    pub role: String,
}

impl Caller {
    /// The caller, if an administrator; else a 403.
    pub fn require_admin(self) -> Result<Self, Problem> {
        if self.role == "admin" {
            Ok(self)
        } else {
            Err(
                Problem::typed(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                    .with_detail("this needs an administrator"),
            )
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    /// `events:read` on a service token that may only read event feeds.
    #[serde(default)]
    scope: Option<String>,
    /// Expiry, seconds since the epoch (required by the validation).
    exp: u64,
}

/// The scope of a service token that may only read the audience's event feed.
pub const EVENTS_READ: &str = "events:read";

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

struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    /// When the key set was last asked for, whatever the answer.
    fetched: Option<Instant>,
    /// Whether the last ask failed (no answer, or not a key set): an unknown key id then says
    /// nothing about the token.
    failed: bool,
}

/// Verifies access tokens against identity's published keys. Cheap to clone.
#[derive(Clone)]
pub struct AuthVerifier {
    config: Arc<AuthConfig>,
    keys: Arc<RwLock<Keys>>,
    refetch: Arc<tokio::sync::Mutex<()>>,
    client: reqwest::Client,
    validation: Arc<Validation>,
    service_validation: Arc<Validation>,
    /// Tokens that passed, per audience, by their text.
    verified: Arc<Mutex<Remembered>>,
}

/// Verified tokens by their text, one map per [`Audience`].
type Remembered = [HashMap<Box<str>, Verified>; 2];

/// Which validation a remembered token passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Audience {
    User = 0,
    Service = 1,
}

/// A token that passed verification: its claims, and the key that signed it.
struct Verified {
    claims: Claims,
    kid: String,
}

impl std::fmt::Debug for AuthVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AuthVerifier {
    /// A verifier for `config`; keys are fetched by [`Self::fetch_keys_in_background`], else
    /// on first use.
    pub fn new(config: AuthConfig) -> Self {
        let validation = |audience: &str| {
            let mut validation = Validation::new(Algorithm::EdDSA);
            validation.set_issuer(&[&config.issuer]);
            validation.set_audience(&[audience]);
            validation.validate_nbf = true;
            validation.leeway = LEEWAY;
            validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
            validation
        };
        let (user, service) = (
            validation(&config.audience),
            validation(&config.service_audience),
        );
        Self {
            config: Arc::new(config),
            keys: Arc::new(RwLock::new(Keys {
                by_kid: HashMap::new(),
                fetched: None,
                failed: false,
            })),
            refetch: Arc::new(tokio::sync::Mutex::new(())),
            client: reqwest::Client::builder()
                .connect_timeout(FETCH_CONNECT_TIMEOUT)
                .timeout(FETCH_TIMEOUT)
                .build()
                .unwrap_or_default(),
            validation: Arc::new(user),
            service_validation: Arc::new(service),
            verified: Arc::new(Mutex::new([HashMap::new(), HashMap::new()])),
        }
    }

    /// Fetches the key set now, in a task, and again (250 ms, doubling up to 5 s apart) until
    /// identity answers, so that the first caller after start-up does not wait on it. The task
    /// ends once identity has answered, or when the last clone of this verifier is dropped. Call it once,
    /// inside the service's runtime, when the service starts.
    pub fn fetch_keys_in_background(&self) {
        let keys = Arc::downgrade(&self.keys);
        let (client, config) = (self.client.clone(), self.config.clone());
        tokio::spawn(async move {
            let mut pause = MIN_REFETCH_WITHOUT_KEYS;
            loop {
                let fetched = fetch_key_set(&client, &config.jwks_url).await;
                let Some(keys) = keys.upgrade() else { return };
                match &fetched {
                    // Identity (or the gateway in front of it) starting after this service is
                    // ordinary; still failing after the pause has grown is worth a warning.
                    Err(err) if pause < MAX_BACKGROUND_PAUSE => {
                        tracing::debug!(%err, url = %config.jwks_url, "no JWKS yet; asking again");
                    }
                    Err(err) => {
                        tracing::warn!(%err, url = %config.jwks_url, "cannot fetch the JWKS; asking again");
                    }
                    Ok(by_kid) if by_kid.is_empty() => {
                        tracing::warn!(url = %config.jwks_url, "the JWKS holds no Ed25519 key");
                    }
                    Ok(_) => {}
                }
                // An answer ends the task, keys or none: a key set without keys is identity's to
                // fix, and a token naming a key is looked up then.
                let answered = fetched.is_ok();
                keep(&keys, fetched);
                if answered {
                    return;
                }
                drop(keys);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKGROUND_PAUSE);
            }
        });
    }

    /// Verifies a user's `token`.
    pub async fn verify(&self, token: &str) -> Result<Caller, Problem> {
        let claims = self.claims(token, Audience::User).await?;
        Ok(Caller {
            id: claims.sub,
            role: claims.role,
        })
    }

    /// Verifies a service token addressed to this service (`service_audience`) for an internal
    /// endpoint: a token narrowed to reading event feeds (`scope: "events:read"`) is a 403.
    pub async fn verify_service(&self, token: &str) -> Result<ServiceCaller, Problem> {
        let (caller, scope) = self.verify_any_service(token).await?;
        match scope.as_deref() {
            None => Ok(caller),
            Some(_) => Err(
                Problem::typed(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                    .with_detail("this token may only read the event feed"),
            ),
        }
    }

    /// Verifies a service token addressed to this service for its event feed: full tokens and
    /// feed readers' (`scope: "events:read"`) alike.
    pub async fn verify_feed_reader(&self, token: &str) -> Result<ServiceCaller, Problem> {
        let (caller, scope) = self.verify_any_service(token).await?;
        match scope.as_deref() {
            None | Some(EVENTS_READ) => Ok(caller),
            Some(_) => Err(
                Problem::typed(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                    .with_detail("this token's scope does not cover the event feed"),
            ),
        }
    }

    async fn verify_any_service(
        &self,
        token: &str,
    ) -> Result<(ServiceCaller, Option<String>), Problem> {
        if self.config.service_audience.is_empty() {
            return Err(unauthorized(
                Some("invalid_token"),
                "this service has no internal endpoints",
            ));
        }
        let claims = self.claims(token, Audience::Service).await?;
        match claims.sub.strip_prefix("service:") {
            Some(service) if claims.role == "service" => Ok((
                ServiceCaller {
                    service: service.to_owned(),
                },
                claims.scope,
            )),
            _ => Err(
                Problem::typed(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                    .with_detail("this endpoint is for services only"),
            ),
        }
    }

    /// The claims of `token` if it verifies for `audience`: remembered from an earlier check of
    /// the same token while it is unexpired and its key is still published (and fresh), checked
    /// in full otherwise.
    ///
    /// A signature check (Ed25519) costs tens of microseconds, and a session sends its token
    /// with every request; in `souk monolith` the gateway and each service on a request's way
    /// check the same token again.
    async fn claims(&self, token: &str, audience: Audience) -> Result<Claims, Problem> {
        if let Some(claims) = self.recall(token, audience) {
            return Ok(claims);
        }
        let invalid = || {
            unauthorized(
                Some("invalid_token"),
                "the access token is not valid or has expired",
            )
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        if self.key(&kid).is_none() || self.stale() {
            self.fetch_throttled().await;
        }
        let Some(key) = self.key(&kid) else {
            return Err(if self.fetch_failed() {
                unavailable()
            } else {
                invalid()
            });
        };
        let validation = match audience {
            Audience::User => &self.validation,
            Audience::Service => &self.service_validation,
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &key, validation)
            .map(|data| data.claims)
            .map_err(|_| invalid())?;
        self.remember(token, audience, &claims, kid);
        Ok(claims)
    }

    fn recall(&self, token: &str, audience: Audience) -> Option<Claims> {
        let remembered = {
            let verified = self.verified();
            let entry = verified[audience as usize].get(token)?;
            (entry.claims.clone(), entry.kid.clone())
        };
        let (claims, kid) = remembered;
        // `nbf` held when it was checked and time only moves on; `exp` is checked as
        // jsonwebtoken does, with the same leeway.
        let live = claims.exp.saturating_add(LEEWAY) >= unix_now();
        (live && !self.stale() && self.key(&kid).is_some()).then_some(claims)
    }

    fn remember(&self, token: &str, audience: Audience, claims: &Claims, kid: String) {
        if token.len() > REMEMBERED_TOKEN_BYTES {
            return;
        }
        let mut all = self.verified();
        let verified = &mut all[audience as usize];
        if verified.len() >= REMEMBERED {
            let now = unix_now();
            verified.retain(|_, entry| entry.claims.exp.saturating_add(LEEWAY) >= now);
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
        }
        verified.insert(
            Box::from(token),
            Verified {
                claims: claims.clone(),
                kid,
            },
        );
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // The map is a cache: whatever a panicking holder left in it is still true.
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_kid
            .get(kid)
            .cloned()
    }

    fn fetch_failed(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .failed
    }

    fn stale(&self) -> bool {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.fetched.is_none_or(|at| at.elapsed() > MAX_AGE)
    }

    /// Fetches the key set unless another fetch happened in the last 5 s (or is under way).
    /// While no key is known at all (identity was not up when last asked), it waits out a short
    /// pause (250 ms) and asks again instead of refusing the caller at once.
    async fn fetch_throttled(&self) {
        let _one_at_a_time = self.refetch.lock().await;
        let (fetched, empty) = {
            let keys = self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (keys.fetched, keys.by_kid.is_empty())
        };
        if let Some(at) = fetched {
            let since = at.elapsed();
            if empty {
                tokio::time::sleep(MIN_REFETCH_WITHOUT_KEYS.saturating_sub(since)).await;
            } else if since < MIN_REFETCH {
                return;
            }
        }
        self.fetch_now().await;
    }

    async fn fetch_now(&self) {
        let fetched = tokio::time::timeout(
            REQUEST_FETCH_TIMEOUT,
            fetch_key_set(&self.client, &self.config.jwks_url),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_FETCH_TIMEOUT:?}")));
        if let Err(err) = &fetched {
            tracing::warn!(%err, url = %self.config.jwks_url, "cannot fetch the JWKS; keeping the keys we have");
        }
        keep(&self.keys, fetched);
    }
}

/// Identity's key set at `url`: its Ed25519 keys by key id.
async fn fetch_key_set(
    client: &reqwest::Client,
    url: &str,
) -> Result<HashMap<String, DecodingKey>, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the JWKS answered {}", response.status()));
    }
    let set: JwkSet = response.json().await.map_err(|e| e.to_string())?;
    Ok(set
        .keys
        .into_iter()
        .filter(|k| k.kty == "OKP" && k.crv.as_deref() == Some("Ed25519"))
        .filter_map(|k| Some((k.kid?, DecodingKey::from_ed_components(&k.x?).ok()?)))
        .collect())
}

/// Keeps what a fetch of the key set brought (or, when it failed, the keys there were, marked as
/// not refreshed).
fn keep(keys: &RwLock<Keys>, fetched: Result<HashMap<String, DecodingKey>, String>) {
    let mut keys = keys
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match fetched {
        Ok(by_kid) => {
            *keys = Keys {
                by_kid,
                fetched: Some(Instant::now()),
                failed: false,
            };
        }
        Err(_) => {
            keys.fetched = Some(Instant::now());
            keys.failed = true;
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// 401 with the RFC 6750 challenge (an error code only when a token was presented).
pub fn unauthorized(error: Option<&str>, detail: &str) -> Problem {
    let challenge = match error {
        Some(error) => format!("Bearer realm=\"souk\", error=\"{error}\""),
        None => "Bearer realm=\"souk\"".to_owned(),
    };
    Problem::typed(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
        .with_detail(detail.to_owned())
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::try_from(challenge).unwrap_or(HeaderValue::from_static("Bearer")),
        )
}

/// 503 with `Retry-After`: the token names a key this service could not fetch, so it can be
/// neither accepted nor refused yet.
fn unavailable() -> Problem {
    Problem::unavailable(
        "cannot check the access token now: identity's keys could not be fetched; try again",
    )
    .with_retry_after(RETRY_AFTER_SECONDS)
}

/// Another service calling an internal endpoint, verified by a service token for this service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCaller {
    /// The calling service's client id (`orders`).
    pub service: String,
}

impl ServiceCaller {
    /// The caller, if it is one of `allowed` (an endpoint only some services may call: charges
    /// are for orders); else a 403 naming who may.
    pub fn require_one_of(self, allowed: &[String]) -> Result<Self, Problem> {
        if allowed.contains(&self.service) {
            return Ok(self);
        }
        tracing::warn!(caller = %self.service, "a service called an endpoint it may not");
        Err(
            Problem::typed(StatusCode::FORBIDDEN, "forbidden", "Forbidden").with_detail(format!(
                "service {} may not call this endpoint",
                self.service
            )),
        )
    }
}

/// A service's state gives its verifier to the [`Caller`] extractor.
pub trait HasAuth {
    /// The verifier.
    fn auth(&self) -> &AuthVerifier;
}

/// The token of an `Authorization: Bearer <token>` header, trimmed: the scheme in any case (RFC
/// 9110 §11.1), an empty token none.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| token.trim())
}

/// The bearer token a user's request came with, unverified (for an extractor that also forwards
/// it); without one, the 401 that [`Caller`] answers.
pub fn access_token(headers: &HeaderMap) -> Result<&str, Problem> {
    bearer(headers).ok_or_else(|| {
        unauthorized(
            None,
            "sign in first: send Authorization: Bearer <access token>",
        )
    })
}

impl<S> FromRequestParts<S> for Caller
where
    S: HasAuth + Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        state.auth().verify(access_token(&parts.headers)?).await
    }
}

/// An internal endpoint's caller: a service token for this service ([`AuthVerifier::verify_service`]).
/// A user's token is refused (401: wrong audience), whoever the user is, and so is a token
/// narrowed to reading event feeds (403).
impl<S> FromRequestParts<S> for ServiceCaller
where
    S: HasAuth + Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            unauthorized(
                None,
                "internal endpoint: send Authorization: Bearer <service token>",
            )
        })?;
        state.auth().verify_service(token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn bearer_tokens_are_read_in_any_case_and_trimmed() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer  ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    /// The key set the test's identity serves; empty it to withdraw the key, `null` to make the
    /// JWKS answer 503.
    type Served = Arc<Mutex<serde_json::Value>>;

    /// A verifier trusting a fresh key served as a JWKS on a random port, and a token signer.
    async fn verifier() -> (AuthVerifier, impl Fn(&str, &str, u64) -> String, Served) {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pair = Ed25519KeyPair::generate().unwrap();
        let pkcs8 = pair.to_pkcs8().unwrap();
        let x = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            pair.public_key().as_ref(),
        );
        let served: Served = Arc::new(Mutex::new(
            serde_json::json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1" }] }),
        ));
        let serving = served.clone();
        let router = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let jwks = serving.lock().unwrap().clone();
                async move {
                    if jwks.is_null() {
                        Err(StatusCode::SERVICE_UNAVAILABLE)
                    } else {
                        Ok(axum::Json(jwks))
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // The trigger is dropped: the server runs until the test's runtime ends.
        let (_, shutdown) = crate::Shutdown::manual(Duration::from_secs(1));
        tokio::spawn(crate::serve(listener, router, shutdown));
        let verifier = AuthVerifier::new(AuthConfig {
            jwks_url: format!("http://{address}/jwks"),
            service_audience: "orders".into(),
            ..AuthConfig::default()
        });
        let key = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
        let sign = move |sub: &str, audience: &str, exp: u64| {
            let role = if sub.starts_with("service:") {
                "service"
            } else {
                "user"
            };
            let claims = serde_json::json!({
                "iss": "souk-identity", "aud": audience, "sub": sub, "role": role,
                "nbf": unix_now() - 1, "exp": exp
            });
            let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        };
        (verifier, sign, served)
    }

    #[tokio::test]
    async fn a_remembered_token_still_answers_only_for_its_audience() {
        let (verifier, sign, _) = verifier().await;
        let user = sign("u1", "souk", unix_now() + 600);
        let service = sign("service:cart", "orders", unix_now() + 600);
        for _ in 0..2 {
            assert_eq!(verifier.verify(&user).await.unwrap().id, "u1");
            assert!(verifier.verify_service(&user).await.is_err());
            assert_eq!(
                verifier.verify_service(&service).await.unwrap().service,
                "cart"
            );
            assert!(verifier.verify(&service).await.is_err());
        }
        let remembered = verifier.verified();
        assert_eq!(remembered[Audience::User as usize].len(), 1);
        assert_eq!(remembered[Audience::Service as usize].len(), 1);
    }

    #[tokio::test]
    async fn a_remembered_token_is_refused_once_expired_or_once_its_key_is_withdrawn() {
        let (verifier, sign, served) = verifier().await;
        let token = sign("u1", "souk", unix_now() + 600);
        verifier.verify(&token).await.unwrap();
        // Expired past the leeway: forged into the memory, since waiting would take a minute.
        let expired = sign("u2", "souk", unix_now() + 600);
        verifier.verify(&expired).await.unwrap();
        verifier.verified()[Audience::User as usize]
            .get_mut(expired.as_str())
            .unwrap()
            .claims
            .exp = unix_now() - LEEWAY - 1;
        assert!(verifier.recall(&expired, Audience::User).is_none());
        assert!(verifier.recall(&token, Audience::User).is_some());
        // Identity withdraws the key; once the verifier's copy is due for a refresh, the
        // remembered token is checked again, and refused.
        *served.lock().unwrap() = serde_json::json!({ "keys": [] });
        verifier.keys.write().unwrap().fetched = None;
        assert!(verifier.recall(&token, Audience::User).is_none());
        assert_eq!(verifier.verify(&token).await.unwrap_err().status, 401);
    }

    #[tokio::test]
    async fn a_good_token_is_a_503_not_a_401_while_the_keys_cannot_be_fetched() {
        let (verifier, sign, served) = verifier().await;
        let keys = served.lock().unwrap().clone();
        *served.lock().unwrap() = serde_json::Value::Null;
        let token = sign("u1", "souk", unix_now() + 600);
        let problem = verifier.verify(&token).await.unwrap_err();
        assert_eq!(problem.status, 503, "{problem:?}");
        let response = axum::response::IntoResponse::into_response(problem);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        // Identity answers again: the same token verifies (the next fetch is 250 ms away while
        // no key is known).
        *served.lock().unwrap() = keys;
        assert_eq!(verifier.verify(&token).await.unwrap().id, "u1");
        // A key set that was fetched and does not name the token's key is a refusal.
        *served.lock().unwrap() = serde_json::json!({ "keys": [] });
        verifier.keys.write().unwrap().fetched = None;
        verifier.verified()[Audience::User as usize].clear();
        assert_eq!(verifier.verify(&token).await.unwrap_err().status, 401);
    }

    #[tokio::test]
    async fn keys_are_fetched_in_the_background_until_identity_answers() {
        let (verifier, sign, served) = verifier().await;
        let keys = served.lock().unwrap().clone();
        *served.lock().unwrap() = serde_json::Value::Null;
        verifier.fetch_keys_in_background();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(verifier.fetch_failed());
        *served.lock().unwrap() = keys;
        let deadline = Instant::now() + Duration::from_secs(5);
        while verifier.key("k1").is_none() {
            assert!(
                Instant::now() < deadline,
                "no key fetched in the background"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Known before any request: the first one costs no fetch.
        let fetched = verifier.keys.read().unwrap().fetched;
        let token = sign("u1", "souk", unix_now() + 600);
        assert_eq!(verifier.verify(&token).await.unwrap().id, "u1");
        assert_eq!(verifier.keys.read().unwrap().fetched, fetched);
    }

    #[tokio::test]
    async fn the_memory_stays_bounded() {
        let (verifier, _, _) = verifier().await;
        let mut last = String::new();
        for n in 0..REMEMBERED + 10 {
            last = format!("token-{n}");
            verifier.remember(
                &last,
                Audience::User,
                &Claims {
                    sub: format!("u{n}"),
                    role: "user".into(),
                    scope: None,
                    exp: unix_now() + 600,
                },
                "k1".into(),
            );
        }
        let size = verifier.verified()[Audience::User as usize].len();
        assert!(size <= REMEMBERED, "{size} remembered");
        assert!(verifier.verified()[Audience::User as usize].contains_key(last.as_str()));
    }

    #[test]
    fn a_missing_access_token_is_the_401_that_asks_for_one() {
        let problem = access_token(&HeaderMap::new()).unwrap_err();
        assert_eq!(problem.status, 401);
        assert_eq!(
            problem.detail.as_deref(),
            Some("sign in first: send Authorization: Bearer <access token>")
        );
    }
}
