//! Forwarding to an upstream: guards, balancing, attempts and retries.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use tokio::time::Instant;

use crate::body::{RequestBody, ResponseBody};
use crate::config::{Protocol, ms};
use crate::headers;
use crate::pool::{SendError, Target};
use crate::table::Route;
use crate::upstream::{Admission, Endpoint, OwnedInFlight, Upstream};

use super::problem::{Problem, problem, too_large};
use super::{ClientBody, Proxy};

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// How one attempt ended.
enum Outcome {
    /// An answer below 500, or any answer that will not be retried.
    Answered(Response<Incoming>),
    /// 502, 503 or 504 from the upstream: retryable for idempotent requests.
    Overloaded(Response<Incoming>),
    /// Other 5xx: a failure, never retried.
    Failed(Response<Incoming>),
    /// No connection: the request was never sent, so any method may be retried.
    Unreachable,
    /// No response head in time.
    TimedOut,
    /// The connection broke after the request may have been sent.
    Broken,
    /// The client's body went over the route's limit while streaming.
    BodyTooLarge,
    /// The client's body could not be read while streaming (bad chunking, cut off).
    BadClientBody,
}

/// What forwarding a request came to.
pub(super) struct Forwarded {
    /// The client's answer.
    pub(super) response: Response<ResponseBody>,
    /// The endpoint that answered last, if one was tried.
    pub(super) endpoint: Option<Arc<Endpoint>>,
    /// Attempts sent.
    pub(super) attempts: u32,
}

impl Forwarded {
    /// An answer the gateway gave without sending anything upstream.
    pub(super) fn unsent(response: Response<ResponseBody>) -> Self {
        Self {
            response,
            endpoint: None,
            attempts: 0,
        }
    }
}

impl Proxy {
    /// Forwards to the route's upstream and counts the answer in its traffic.
    pub(super) async fn forward(
        &self,
        route: &Arc<Route>,
        parts: Parts,
        body: ClientBody,
        request_id: &HeaderValue,
    ) -> Forwarded {
        let forwarded = self.try_forward(route, parts, body, request_id).await;
        route.upstream.traffic.record(forwarded.response.status());
        forwarded
    }

    /// [`Self::forward`] without the counting.
    async fn try_forward(
        &self,
        route: &Arc<Route>,
        parts: Parts,
        body: ClientBody,
        request_id: &HeaderValue,
    ) -> Forwarded {
        let upstream = &route.upstream;
        let deadline = Instant::now() + route.timeout;
        if declared_length(&parts).is_some_and(|length| length > route.body_limit) {
            return Forwarded::unsent(too_large().into_response(request_id));
        }
        for decision in [route.faults.decide(), upstream.faults.decide()] {
            if let Some(delay) = decision.delay {
                tokio::time::sleep(delay).await;
            }
            if let Some(status) = decision.abort {
                return Forwarded::unsent(
                    problem(status, "fault injected for a chaos run").into_response(request_id),
                );
            }
        }
        if let Some(router) = self.shared.in_process.get(&*upstream.name) {
            return self
                .call_in_process(router, route, parts, body, request_id)
                .await;
        }
        let probe = match upstream.breaker.admit(upstream.clock.now_ms()) {
            Admission::Allowed { probe } => probe,
            Admission::Refused { retry_after_ms } => {
                route.metrics.breaker_refusals.increment(1);
                upstream.publish_breaker_state();
                let retry_after = retry_after_ms.div_ceil(1_000).max(1).to_string();
                let response = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this part of the shop is failing; try again shortly",
                )
                .with_header(header::RETRY_AFTER, &retry_after);
                return Forwarded::unsent(response.into_response(request_id));
            }
        };
        let verdict = Verdict {
            upstream,
            probe,
            recorded: false,
        };
        let Some(slot) = upstream.acquire() else {
            let response = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "this part of the shop is too busy; try again shortly",
            )
            .with_header(header::RETRY_AFTER, "1");
            return Forwarded::unsent(response.into_response(request_id));
        };
        upstream.budget.deposit();

        let retryable_method =
            is_idempotent(&parts.method) || parts.headers.contains_key(IDEMPOTENCY_KEY);
        // Any method is retried when its connection could not be opened, so small bodies are
        // buffered whenever retries are on: a body handed to a failed attempt is gone.
        let may_retry = upstream.config.retry.max_retries > 0;
        let body = match self
            .request_body(body, &parts, route, may_retry, deadline)
            .await
        {
            Ok(body) => body,
            Err(response) => {
                verdict.record(true);
                return Forwarded::unsent(response.into_response(request_id));
            }
        };
        let spare = body.replay();
        let mut body = Some(body);
        let path = route.upstream_uri(&parts.uri);
        let mut attempt: u32 = 0;
        let mut previous: Option<Arc<Endpoint>> = None;
        loop {
            let Ok(endpoint) = upstream.pick(previous.as_deref()) else {
                verdict.record(false);
                let response = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this part of the shop has no instance running",
                );
                return Forwarded {
                    response: response.into_response(request_id),
                    endpoint: None,
                    attempts: attempt,
                };
            };
            let Some(this_body) = body
                .take()
                .or_else(|| spare.as_ref().and_then(RequestBody::replay))
            else {
                break Forwarded {
                    response: problem(
                        StatusCode::BAD_GATEWAY,
                        "the request could not be sent again",
                    )
                    .into_response(request_id),
                    endpoint: None,
                    attempts: attempt,
                };
            };
            attempt += 1;
            route.metrics.attempts.increment(1);
            let in_flight = OwnedInFlight::new(Arc::clone(&endpoint));
            let per_try = ms(upstream.config.per_try_timeout_ms)
                .min(deadline.saturating_duration_since(Instant::now()));
            let outcome = self
                .attempt(upstream, &endpoint, &parts, &path, this_body, per_try)
                .await;
            let endpoint_ok = matches!(
                outcome,
                Outcome::Answered(_) | Outcome::BodyTooLarge | Outcome::BadClientBody
            );
            upstream.record(&endpoint, endpoint_ok);

            let retry_after = match &outcome {
                Outcome::Overloaded(response) if retryable_method => Some(retry_after(response)),
                Outcome::Unreachable => Some(Duration::ZERO),
                Outcome::TimedOut | Outcome::Broken if retryable_method => Some(Duration::ZERO),
                _ => None,
            };
            if let Some(wait) = retry_after {
                let wait = wait.max(backoff(&upstream.config.retry, attempt));
                let retry = attempt <= upstream.config.retry.max_retries
                    && spare.is_some()
                    && Instant::now() + wait < deadline
                    // A connection that could not be opened cost the upstream nothing: retrying
                    // it elsewhere does not spend the budget, which caps extra load.
                    && (matches!(outcome, Outcome::Unreachable)
                        || upstream.budget.withdraw(upstream.clock.now_ms()));
                if retry {
                    route.metrics.retries.increment(1);
                    tokio::time::sleep(wait).await;
                    previous = Some(endpoint);
                    continue;
                }
            }
            let success = matches!(
                outcome,
                Outcome::Answered(_) | Outcome::BodyTooLarge | Outcome::BadClientBody
            );
            verdict.record(success);
            upstream.publish_breaker_state();
            let answered = Some(Arc::clone(&endpoint));
            let response = match outcome {
                Outcome::Answered(response)
                | Outcome::Overloaded(response)
                | Outcome::Failed(response) => stream_back(response, request_id, (slot, in_flight)),
                Outcome::Unreachable | Outcome::Broken => {
                    tracing::warn!(upstream = %upstream.name, endpoint = %endpoint.addr, request_id = ?request_id, "upstream unreachable");
                    problem(
                        StatusCode::BAD_GATEWAY,
                        "this part of the shop could not be reached",
                    )
                    .into_response(request_id)
                }
                Outcome::TimedOut => {
                    tracing::warn!(upstream = %upstream.name, endpoint = %endpoint.addr, request_id = ?request_id, "upstream timed out");
                    problem(
                        StatusCode::GATEWAY_TIMEOUT,
                        "this part of the shop did not answer in time",
                    )
                    .into_response(request_id)
                }
                Outcome::BodyTooLarge => too_large().into_response(request_id),
                Outcome::BadClientBody => problem(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
                .into_response(request_id),
            };
            break Forwarded {
                response,
                endpoint: answered,
                attempts: attempt,
            };
        }
    }

    /// Sends one attempt to `endpoint`.
    async fn attempt(
        &self,
        upstream: &Upstream,
        endpoint: &Endpoint,
        parts: &Parts,
        path: &Uri,
        body: RequestBody,
        timeout: Duration,
    ) -> Outcome {
        let protocol = upstream.config.protocol;
        // HTTP/1.1 wants the origin form and a Host header; HTTP/2 the absolute form.
        let uri = match protocol {
            Protocol::Http1 => Ok(path.clone()),
            Protocol::H2c => Uri::builder()
                .scheme("http")
                .authority(endpoint.authority.clone())
                .path_and_query(path.path_and_query().map_or("/", |pq| pq.as_str()))
                .build(),
        };
        let Ok(uri) = uri else { return Outcome::Broken };
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = parts.headers.clone();
        if protocol == Protocol::Http1 {
            request
                .headers_mut()
                .insert(header::HOST, endpoint.host.clone());
        }
        let target = Target {
            addr: endpoint.addr,
            protocol,
            connect_timeout: ms(upstream.config.connect_timeout_ms),
            max_connections: upstream.config.max_idle_per_endpoint,
        };
        match tokio::time::timeout(timeout, self.pool.send(target, request)).await {
            Err(_) => Outcome::TimedOut,
            Ok(Ok(response)) => match response.status().as_u16() {
                502..=504 => Outcome::Overloaded(response),
                500..=599 => Outcome::Failed(response),
                _ => Outcome::Answered(response),
            },
            Ok(Err(SendError::Connect(err))) => {
                tracing::debug!(%err, endpoint = %endpoint.addr, "cannot connect upstream");
                Outcome::Unreachable
            }
            Ok(Err(SendError::Http(err))) if caused_by_length_limit(&err) => Outcome::BodyTooLarge,
            Ok(Err(SendError::Http(err))) if caused_by_client_body(&err) => Outcome::BadClientBody,
            Ok(Err(SendError::Http(err))) => {
                tracing::debug!(error = %souk_chassis::problem::ErrorChain(&err), "upstream attempt failed");
                Outcome::Broken
            }
        }
    }

    /// Buffers small bodies of retryable requests so they can be sent again; streams the rest,
    /// cut off at the route's limit.
    async fn request_body(
        &self,
        body: ClientBody,
        parts: &Parts,
        route: &Route,
        may_retry: bool,
        deadline: Instant,
    ) -> Result<RequestBody, Problem> {
        let body = match body {
            ClientBody::Incoming(body) if !body.is_end_stream() => body,
            _ => {
                return Ok(RequestBody::Whole {
                    body: Full::new(Bytes::new()),
                });
            }
        };
        if body.is_end_stream() {
            return Ok(RequestBody::Whole {
                body: Full::new(Bytes::new()),
            });
        }
        let limit = usize::try_from(route.body_limit).unwrap_or(usize::MAX);
        let small = declared_length(parts)
            .is_some_and(|n| n <= route.upstream.config.retry.buffer_body_bytes);
        if !(may_retry && small) {
            return Ok(RequestBody::Stream {
                body: Limited::new(body, limit),
            });
        }
        match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
            Ok(Ok(collected)) => Ok(RequestBody::Whole {
                body: Full::new(collected.to_bytes()),
            }),
            Ok(Err(err))
                if err
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(too_large())
            }
            Ok(Err(_)) => Err(problem(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )),
            Err(_) => Err(problem(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            )),
        }
    }
}

/// How one admitted request ended, for the breaker; recorded once. A half-open probe dropped
/// unrecorded (its client went away, or it was shed) counts as failed: otherwise the breaker would
/// wait for its result forever, refusing every request meanwhile.
struct Verdict<'a> {
    upstream: &'a Upstream,
    probe: bool,
    recorded: bool,
}

impl Verdict<'_> {
    fn record(mut self, success: bool) {
        self.recorded = true;
        let now = self.upstream.clock.now_ms();
        self.upstream.breaker.record(success, self.probe, now);
    }
}

impl Drop for Verdict<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            let now = self.upstream.clock.now_ms();
            self.upstream.breaker.record(false, true, now);
            self.upstream.publish_breaker_state();
        }
    }
}

/// Passes an upstream response on, streaming its body and holding `guard` until it is done.
fn stream_back(
    response: Response<Incoming>,
    request_id: &HeaderValue,
    guard: impl Send + Sync + 'static,
) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    headers::prepare_response(&mut parts.headers, request_id);
    Response::from_parts(parts, ResponseBody::upstream(body, guard))
}

fn declared_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether the client's own body failed (see [`crate::body::ClientBodyError`]).
fn caused_by_client_body(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if err.is::<crate::body::ClientBodyError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn caused_by_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// How long an overloaded upstream asked us to wait (`Retry-After` in seconds), if it said.
fn retry_after(response: &Response<Incoming>) -> Duration {
    response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}

/// Exponential backoff with full jitter: a random wait up to `base × 2^(attempt-1)`, capped.
fn backoff(config: &crate::config::RetryConfig, attempt: u32) -> Duration {
    let ceiling = config
        .backoff_base_ms
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(config.backoff_max_ms);
    Duration::from_millis(fastrand::u64(0..=ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetryConfig;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let config = RetryConfig {
            backoff_base_ms: 10,
            backoff_max_ms: 50,
            ..RetryConfig::default()
        };
        for attempt in 1..20 {
            let ceiling = (10u64 << (attempt - 1).min(16)).min(50);
            assert!(backoff(&config, attempt) <= Duration::from_millis(ceiling));
        }
    }

    #[test]
    fn only_safe_methods_are_idempotent() {
        assert!(
            is_idempotent(&Method::GET)
                && is_idempotent(&Method::PUT)
                && is_idempotent(&Method::DELETE)
        );
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
    }
}
