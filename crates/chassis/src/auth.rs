//! Verifying callers inside a service — defence in depth behind the gateway's own check.
//!
//! A service is handed an [`AuthVerifier`] (keys from identity's JWKS, fetched on first use, again
//! on an unknown key id at most every 5 s, and every 5 minutes) and takes a [`Caller`] in the
//! handlers that need one. A missing or bad token is a 401 problem with `WWW-Authenticate`;
//! [`Caller::require_admin`] turns a user into a 403. Only EdDSA with a published key verifies,
//! with the configured issuer and audience, unexpired and not before `nbf`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    /// `events:read` on a service token that may only read event feeds.
    #[serde(default)]
    scope: Option<String>,
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
    fetched: Option<Instant>,
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
}

impl std::fmt::Debug for AuthVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AuthVerifier {
    /// A verifier for `config`; keys are fetched on first use.
    pub fn new(config: AuthConfig) -> Self {
        let validation = |audience: &str| {
            let mut validation = Validation::new(Algorithm::EdDSA);
            validation.set_issuer(&[&config.issuer]);
            validation.set_audience(&[audience]);
            validation.validate_nbf = true;
            validation.leeway = 30;
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
            })),
            refetch: Arc::new(tokio::sync::Mutex::new(())),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            validation: Arc::new(user),
            service_validation: Arc::new(service),
        }
    }

    /// Verifies a user's `token`.
    pub async fn verify(&self, token: &str) -> Result<Caller, Problem> {
        self.verify_with(token, &self.validation).await
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
        let claims = self.claims(token, &self.service_validation).await?;
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

    async fn verify_with(&self, token: &str, validation: &Validation) -> Result<Caller, Problem> {
        let claims = self.claims(token, validation).await?;
        Ok(Caller {
            id: claims.sub,
            role: claims.role,
        })
    }

    async fn claims(&self, token: &str, validation: &Validation) -> Result<Claims, Problem> {
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
        let key = self.key(&kid).ok_or_else(invalid)?;
        jsonwebtoken::decode::<Claims>(token, &key, validation)
            .map(|data| data.claims)
            .map_err(|_| invalid())
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_kid
            .get(kid)
            .cloned()
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
        match self.fetch().await {
            Ok(by_kid) => {
                *self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Keys {
                    by_kid,
                    fetched: Some(Instant::now()),
                };
            }
            Err(err) => {
                tracing::warn!(%err, url = %self.config.jwks_url, "cannot fetch the JWKS; keeping the keys we have");
                self.keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .fetched = Some(Instant::now());
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let response = self
            .client
            .get(&self.config.jwks_url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
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
