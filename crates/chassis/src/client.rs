//! Calling another service: over HTTP (`souk up`, Kubernetes) or in-process (`souk monolith`).
//!
//! A [`ServiceClient`] names the service it calls, so every failure says whom it concerns, and
//! carries the caller's trace context. It never retries on its own: only the caller knows whether
//! a request is safe to repeat. What it returns separates the two failures a caller must tell
//! apart: the service answered no ([`ClientError::Status`], a 4xx with its problem body) or could
//! not answer at all ([`ClientError::Unavailable`]: refused, timed out, 5xx) — the second is when
//! a caller degrades instead of failing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use tracing::Instrument;

/// Largest answer body read from another service.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Where a service's neighbour is (`[<service>.<neighbour>]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Base URL the paths are appended to, e.g. `http://127.0.0.1:8101` (the service itself) or
    /// `http://127.0.0.1:8080/api` (through the gateway, which rewrites `/api/v1/…` to `/v1/…`).
    pub url: String,
    /// Whole-call deadline in milliseconds.
    pub timeout_ms: u64,
}

impl ClientConfig {
    /// A config for `url` with the default deadline (2 s).
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The whole-call deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080/api".into(),
            timeout_ms: 2000,
        }
    }
}

/// Why a call to another service failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The service could not answer: unreachable, too slow, or a 5xx. Callers degrade or retry.
    #[error("{service} is unavailable: {reason}")]
    Unavailable {
        /// The service called.
        service: String,
        /// What happened, for logs.
        reason: String,
    },
    /// The service answered with a 4xx; `body` is its problem document (or `Null`).
    #[error("{service} answered {status}")]
    Status {
        /// The service called.
        service: String,
        /// Its status.
        status: StatusCode,
        /// Its answer, parsed as JSON when it was.
        body: serde_json::Value,
    },
    /// The answer was not what this caller reads.
    #[error("{service} sent an answer this caller cannot read: {reason}")]
    Decode {
        /// The service called.
        service: String,
        /// Why it could not be read.
        reason: String,
    },
}

impl ClientError {
    /// Whether the service could not answer (as opposed to answering no).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The status the service answered, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A handle on one neighbouring service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    service: String,
    target: Target,
    timeout: Duration,
}

#[derive(Debug, Clone)]
enum Target {
    Http {
        base: String,
        client: reqwest::Client,
    },
    InProcess(Router),
    /// A router in this process that may not exist yet (`service::Local`): until it does, the
    /// service is unavailable, as a process not yet listening would be.
    Late(Arc<OnceLock<Router>>),
}

/// An answer as received: status and raw body.
struct Answer {
    status: StatusCode,
    body: bytes::Bytes,
}

impl ServiceClient {
    /// A client calling `service` over HTTP at `config.url`.
    pub fn http(service: impl Into<String>, config: &ClientConfig) -> Self {
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            service: service.into(),
            target: Target::Http {
                base: config.url.trim_end_matches('/').to_owned(),
                client,
            },
            timeout: config.timeout(),
        }
    }

    /// A client calling `router` in this process (the monolith), with the same deadline rules.
    pub fn in_process(service: impl Into<String>, router: Router, timeout: Duration) -> Self {
        Self {
            service: service.into(),
            target: Target::InProcess(router),
            timeout,
        }
    }

    /// A client calling the router that will be put in `slot` (the monolith, whose services
    /// start in any order); until then every call fails as unavailable.
    pub(crate) fn late(
        service: impl Into<String>,
        slot: Arc<OnceLock<Router>>,
        timeout: Duration,
    ) -> Self {
        Self {
            service: service.into(),
            target: Target::Late(slot),
            timeout,
        }
    }

    /// The service this client calls.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The whole-call deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// This client with another whole-call deadline (for a long-poll, say).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// GET `path` (with its query) and read the JSON answer.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<T, ClientError> {
        let answer = self.call(Method::GET, path, bearer, None).await?;
        self.decode(answer)
    }

    /// Sends `body` as JSON with `method` to `path` and reads the JSON answer.
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode {
            service: self.service.clone(),
            reason: format!("cannot encode the request: {e}"),
        })?;
        let answer = self.call(method, path, bearer, Some(body)).await?;
        self.decode(answer)
    }

    fn decode<T: DeserializeOwned>(&self, answer: Answer) -> Result<T, ClientError> {
        if answer.status.is_server_error() {
            return Err(self.unavailable(format!("it answered {}", answer.status)));
        }
        if !answer.status.is_success() {
            return Err(ClientError::Status {
                service: self.service.clone(),
                status: answer.status,
                body: serde_json::from_slice(&answer.body).unwrap_or(serde_json::Value::Null),
            });
        }
        // An empty success (204) reads as JSON null, so `()` and `Option<_>` callers work.
        let body: &[u8] = if answer.body.is_empty() {
            b"null"
        } else {
            &answer.body
        };
        serde_json::from_slice(body).map_err(|e| ClientError::Decode {
            service: self.service.clone(),
            reason: e.to_string(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let span = self.call_span(&method, path);
        let mut headers = http::HeaderMap::new();
        crate::telemetry::inject_trace(&span, &mut headers);
        if let Some(token) = bearer {
            let value = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| self.unavailable("the token is not a valid header value".into()))?;
            headers.insert(header::AUTHORIZATION, value);
        }
        if body.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let call = async {
            match &self.target {
                Target::Http { base, client } => {
                    self.over_http(client, method, format!("{base}{path}"), headers, body)
                        .await
                }
                Target::InProcess(router) => {
                    self.in_process_call(router, method, path, headers, body)
                        .await
                }
                Target::Late(slot) => match slot.get() {
                    Some(router) => {
                        self.in_process_call(router, method, path, headers, body)
                            .await
                    }
                    None => Err(self.unavailable("not started yet".into())),
                },
            }
        };
        let answer = tokio::time::timeout(self.timeout, call.instrument(span.clone()))
            .await
            .map_err(|_| self.unavailable(format!("no answer within {:?}", self.timeout)))
            .and_then(|answer| answer);
        match &answer {
            Ok(answer) => {
                span.record("http.response.status_code", answer.status.as_u16());
                if answer.status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
            }
            Err(err) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.message", tracing::field::display(err));
            }
        }
        answer
    }

    /// A client span for one call, a child of the current span; none outside a span (a
    /// background loop's call would begin a trace of its own for nothing).
    fn call_span(&self, method: &Method, path: &str) -> tracing::Span {
        let parent = tracing::Span::current();
        if parent.is_none() {
            return parent;
        }
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        tracing::info_span!(
            "call",
            otel.name = %format_args!("{method} {}", self.service),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            "peer.service" = %self.service,
            "url.path" = path,
            "http.response.status_code" = tracing::field::Empty,
            "error.message" = tracing::field::Empty,
        )
    }

    async fn over_http(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: String,
        headers: http::HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let mut request = client.request(method, url).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unavailable(crate::problem::ErrorChain(&e).to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unavailable(crate::problem::ErrorChain(&e).to_string()))?;
        if body.len() > MAX_BODY {
            return Err(self.unavailable("the answer is too large".into()));
        }
        Ok(Answer { status, body })
    }

    async fn in_process_call(
        &self,
        router: &Router,
        method: Method,
        path: &str,
        headers: http::HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .map_err(|e| self.unavailable(format!("invalid request: {e}")))?;
        *request.headers_mut() = headers;
        if crate::telemetry::exporting() {
            request
                .extensions_mut()
                .insert(crate::telemetry::ServedBy(Arc::from(self.service.as_str())));
        }
        let response = router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| self.unavailable(e.to_string()))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| self.unavailable(e.to_string()))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    fn unavailable(&self, reason: String) -> ClientError {
        ClientError::Unavailable {
            service: self.service.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    fn router() -> Router {
        Router::new()
            .route(
                "/ok",
                get(|| async { axum::Json(serde_json::json!({"n": 1})) }),
            )
            .route(
                "/missing",
                get(|| async { (StatusCode::NOT_FOUND, "{\"status\":404}") }),
            )
            .route("/broken", get(|| async { StatusCode::BAD_GATEWAY }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
    }

    #[derive(Debug, Deserialize)]
    struct N {
        n: u32,
    }

    #[tokio::test]
    async fn in_process_calls_read_json_and_sort_failures() {
        let client = ServiceClient::in_process("neighbour", router(), Duration::from_millis(200));
        let n: N = client.get("/ok", None).await.unwrap();
        assert_eq!(n.n, 1);
        let missing = client.get::<N>("/missing", None).await.unwrap_err();
        assert_eq!(missing.status(), Some(StatusCode::NOT_FOUND));
        assert!(matches!(missing, ClientError::Status { ref body, .. } if body["status"] == 404));
        assert!(
            client
                .get::<N>("/broken", None)
                .await
                .unwrap_err()
                .is_unavailable()
        );
        assert!(
            client
                .get::<N>("/slow", None)
                .await
                .unwrap_err()
                .is_unavailable()
        );
        assert!(matches!(
            client.get::<N>("/missing-route-answers-404", None).await,
            Err(ClientError::Status { .. })
        ));
    }

    #[tokio::test]
    async fn over_http_an_unreachable_service_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = ServiceClient::http(
            "neighbour",
            &ClientConfig {
                url: format!("http://{addr}"),
                timeout_ms: 500,
            },
        );
        let error = client.get::<N>("/ok", None).await.unwrap_err();
        assert!(error.is_unavailable(), "{error}");
        assert!(error.to_string().starts_with("neighbour is unavailable"));
    }
}

/// How a service gets service tokens from identity (`[<service>.service_token]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceTokenConfig {
    /// This service's client id at identity (its name).
    pub client_id: String,
    /// Its client secret (identity's `services.<id>.secret`).
    pub client_secret: crate::Secret,
    /// Where identity answers, and how long to wait for it.
    pub identity: ClientConfig,
}

/// Service tokens for calling other services' internal endpoints: fetched from identity with the
/// service's credentials, one per audience, reused until a minute before they expire.
///
/// Single-flight, and no lock held across I/O: when a token must be fetched, one caller fetches
/// it while the others for the same audience wait for that one answer (or failure) — never in a
/// queue behind each other's fetches, so no caller waits longer than one identity call. A saga
/// step holds a lease while it waits; a queue of fetches, each up to identity's timeout, once let
/// a step outwait its lease while another instance took the saga over.
#[derive(Debug, Clone)]
pub struct ServiceTokens {
    identity: ServiceClient,
    client_id: String,
    client_secret: crate::Secret,
    slots: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Slot>>>,
}

/// One audience's token: fresh in cache, or being fetched by one caller (whose answer the
/// receiver gets).
#[derive(Debug, Clone)]
enum Slot {
    Fresh(CachedToken),
    Fetching(FetchWatch),
}

type FetchWatch = tokio::sync::watch::Receiver<Option<Result<String, ClientError>>>;
type FetchSender = tokio::sync::watch::Sender<Option<Result<String, ClientError>>>;

#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    renew_at: tokio::time::Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// What a caller of [`ServiceTokens::token`] does next.
enum Next {
    Done(String),
    Wait(FetchWatch),
    Fetch(FetchSender),
}

impl ServiceTokens {
    /// Tokens from `identity` (over HTTP or in-process) for `config`'s client.
    pub fn new(identity: ServiceClient, config: &ServiceTokenConfig) -> Self {
        Self {
            identity,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            slots: std::sync::Arc::default(),
        }
    }

    /// A token for calling `audience` (a service name), from cache when still fresh. Waits at
    /// most one identity call (its client's timeout).
    pub async fn token(&self, audience: &str) -> Result<String, ClientError> {
        self.scoped(audience, None).await
    }

    /// A token that only reads `audience`'s event feed (`scope: "events:read"`): what a
    /// consumer asks for, so that holding it lets it do nothing else there.
    pub async fn feed_token(&self, audience: &str) -> Result<String, ClientError> {
        self.scoped(audience, Some(crate::auth::EVENTS_READ)).await
    }

    async fn scoped(&self, audience: &str, scope: Option<&str>) -> Result<String, ClientError> {
        let key = match scope {
            Some(scope) => format!("{audience} {scope}"),
            None => audience.to_owned(),
        };
        loop {
            match self.next(&key) {
                Next::Done(token) => return Ok(token),
                Next::Fetch(sender) => return self.fetch(&key, audience, scope, sender).await,
                Next::Wait(mut watch) => {
                    // The fetcher's answer; if it went away without one (its caller was
                    // cancelled), look again: this caller may fetch now.
                    if let Ok(answer) = watch.wait_for(Option::is_some).await
                        && let Some(answer) = answer.clone()
                    {
                        return answer;
                    }
                }
            }
        }
    }

    /// Decides under the (synchronous, never awaited-across) lock what a caller of the token
    /// cached under `key` does.
    fn next(&self, key: &str) -> Next {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slots.get(key) {
            Some(Slot::Fresh(cached)) if tokio::time::Instant::now() < cached.renew_at => {
                Next::Done(cached.token.clone())
            }
            Some(Slot::Fetching(watch)) => Next::Wait(watch.clone()),
            _ => {
                let (sender, watch) = tokio::sync::watch::channel(None);
                slots.insert(key.to_owned(), Slot::Fetching(watch));
                Next::Fetch(sender)
            }
        }
    }

    /// Fetches `audience`'s token (of `scope`) for every caller waiting on `sender`, and caches
    /// it under `key`.
    async fn fetch(
        &self,
        key: &str,
        audience: &str,
        scope: Option<&str>,
        sender: FetchSender,
    ) -> Result<String, ClientError> {
        // Cancelled mid-fetch: free the slot so that the waiters (told by the sender's drop)
        // fetch themselves instead of waiting for an answer that never comes.
        let mut abandon = Abandon {
            slots: &self.slots,
            key,
            armed: true,
        };
        let mut body = serde_json::json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose(),
            "audience": audience,
        });
        if let Some(scope) = scope {
            body["scope"] = scope.into();
        }
        let answer: Result<TokenAnswer, ClientError> = self
            .identity
            .send(Method::POST, "/v1/auth/service-token", None, &body)
            .await;
        let result = answer.map(|answer| {
            // Renewed a minute early (or halfway, for short-lived tokens) so no call carries one
            // that expires on the way.
            let lifetime = Duration::from_secs(answer.expires_in);
            let margin = Duration::from_secs(60).min(lifetime / 2);
            let cached = CachedToken {
                token: answer.access_token,
                renew_at: tokio::time::Instant::now() + lifetime - margin,
            };
            let token = cached.token.clone();
            self.lock_slots()
                .insert(key.to_owned(), Slot::Fresh(cached));
            token
        });
        if result.is_err() {
            // Failures are not cached: the next caller asks identity again.
            self.lock_slots().remove(key);
        }
        abandon.armed = false;
        sender.send_replace(Some(result.clone()));
        result
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes a token's `Fetching` slot when its fetch is dropped before it finished.
struct Abandon<'a> {
    slots: &'a std::sync::Mutex<std::collections::HashMap<String, Slot>>,
    key: &'a str,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(slots.get(self.key), Some(Slot::Fetching(_))) {
            slots.remove(self.key);
        }
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn tokens_are_fetched_once_per_audience_and_renewed_before_expiry() {
        tokio::time::pause();
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&calls);
        let identity = Router::new().route(
            "/v1/auth/service-token",
            axum::routing::post(move |crate::Json(body): crate::Json<serde_json::Value>| {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert_eq!(body["client_id"], "orders");
                    assert_eq!(body["client_secret"], "s3cret");
                    axum::Json(serde_json::json!({
                        "access_token": format!("{}-{n}", body["audience"].as_str().unwrap()),
                        "token_type": "Bearer",
                        "expires_in": 300,
                    }))
                }
            }),
        );
        let config = ServiceTokenConfig {
            client_id: "orders".into(),
            client_secret: crate::Secret::new("s3cret"),
            identity: ClientConfig::default(),
        };
        let tokens = ServiceTokens::new(
            ServiceClient::in_process("identity", identity, Duration::from_secs(1)),
            &config,
        );
        assert_eq!(tokens.token("inventory").await.unwrap(), "inventory-0");
        assert_eq!(tokens.token("inventory").await.unwrap(), "inventory-0");
        assert_eq!(tokens.token("payments").await.unwrap(), "payments-1");
        tokio::time::advance(Duration::from_secs(241)).await;
        assert_eq!(tokens.token("inventory").await.unwrap(), "inventory-2");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    /// Identity that never answers: callers for one audience share one fetch and its failure,
    /// instead of each waiting out everyone else's fetch in turn.
    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_wait_no_longer_than_it() {
        tokio::time::pause();
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&calls);
        let identity = Router::new().route(
            "/v1/auth/service-token",
            axum::routing::post(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "never"
                }
            }),
        );
        let timeout = Duration::from_millis(500);
        let tokens = ServiceTokens::new(
            ServiceClient::in_process("identity", identity, timeout),
            &ServiceTokenConfig::default(),
        );
        let started = tokio::time::Instant::now();
        let answers = futures::future::join_all((0..8).map(|_| tokens.token("inventory"))).await;
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().is_err_and(ClientError::is_unavailable))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch for all eight");
        assert!(
            started.elapsed() < timeout * 2,
            "waited {:?}, more than one identity call",
            started.elapsed()
        );
        // Failures are not cached: the next caller asks again.
        assert!(tokens.token("inventory").await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// A fetcher that is cancelled leaves no waiter stranded: one of them fetches instead.
    #[tokio::test]
    async fn a_cancelled_fetch_hands_over_to_a_waiter() {
        tokio::time::pause();
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&calls);
        let identity = Router::new().route(
            "/v1/auth/service-token",
            axum::routing::post(move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    axum::Json(
                        serde_json::json!({"access_token": format!("t{n}"), "expires_in": 300}),
                    )
                }
            }),
        );
        let tokens = ServiceTokens::new(
            ServiceClient::in_process("identity", identity, Duration::from_secs(10)),
            &ServiceTokenConfig::default(),
        );
        let first = tokens.clone();
        let fetching = tokio::spawn(async move { first.token("payments").await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let second = tokens.clone();
        let waiting = tokio::spawn(async move { second.token("payments").await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        fetching.abort();
        let token = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter was not stranded")
            .unwrap()
            .unwrap();
        assert_eq!(token, "t1");
        assert_eq!(tokens.token("payments").await.unwrap(), "t1", "cached");
    }
}
