//! Forwarding to a route's upstream: the guards, then attempts on the endpoints the balancer
//! picks, sent again while [`retry_decision`] says so, and the last outcome made the answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use opentelemetry::KeyValue;
use tokio::time::Instant;

use crate::body::{RequestBody, ResponseBody};
use crate::config::{Protocol, ms};
use crate::headers;
use crate::pool::{SendError, Target};
use crate::table::Route;
use crate::upstream::{Endpoint, OwnedInFlight, Upstream};

use super::guard::{self, Admitted, declared_length};
use super::problem::{Problem, problem, too_large};
use super::retry::{self, Decision, retry_decision};
use super::{ClientBody, Proxy};

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

/// How one attempt ended (generic over the body so that retry decisions are tested without a
/// connection).
pub(super) enum Outcome<B = Incoming> {
    /// An answer below 500.
    Answered(Response<B>),
    /// 502, 503 or 504 from the upstream: retryable for idempotent requests.
    Overloaded(Response<B>),
    /// Other 5xx: a failure, never retried.
    Failed(Response<B>),
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

impl<B> Outcome<B> {
    /// How the attempt went, in a word (for spans).
    fn name(&self) -> &'static str {
        match self {
            Outcome::Answered(_) => "answered",
            Outcome::Overloaded(_) => "overloaded",
            Outcome::Failed(_) => "failed",
            Outcome::Unreachable => "unreachable",
            Outcome::TimedOut => "timed out",
            Outcome::Broken => "connection broke",
            Outcome::BodyTooLarge => "request body too large",
            Outcome::BadClientBody => "request body unreadable",
        }
    }
}

impl Outcome {
    /// Whether the upstream did its part (for outlier ejection and the breaker): it answered
    /// below 500, or the client's own body failed.
    fn upstream_ok(&self) -> bool {
        matches!(
            self,
            Outcome::Answered(_) | Outcome::BodyTooLarge | Outcome::BadClientBody
        )
    }

    /// The client's answer for the last attempt: the upstream's own, streamed back while `held`
    /// is (the concurrency slot and the endpoint's in-flight count), or the gateway's problem.
    fn into_response(
        self,
        upstream: &Upstream,
        endpoint: &Endpoint,
        request_id: &HeaderValue,
        held: impl Send + Sync + 'static,
    ) -> Response<ResponseBody> {
        let refusal = match self {
            Outcome::Answered(response)
            | Outcome::Overloaded(response)
            | Outcome::Failed(response) => return stream_back(response, request_id, held),
            Outcome::Unreachable | Outcome::Broken => {
                tracing::warn!(upstream = %upstream.name, endpoint = %endpoint.addr, request_id = ?request_id, "upstream unreachable");
                problem(
                    StatusCode::BAD_GATEWAY,
                    "this part of the shop could not be reached",
                )
            }
            Outcome::TimedOut => {
                tracing::warn!(upstream = %upstream.name, endpoint = %endpoint.addr, request_id = ?request_id, "upstream timed out");
                problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    "this part of the shop did not answer in time",
                )
            }
            Outcome::BodyTooLarge => too_large(),
            Outcome::BadClientBody => problem(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            ),
        };
        refusal.into_response(request_id)
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
        let deadline = Instant::now() + route.timeout;
        if let Err(refusal) = guard::check(route, &parts).await {
            return Forwarded::unsent(refusal.into_response(request_id));
        }
        if let Some(router) = self.shared.in_process.get(&*route.upstream.name) {
            return self
                .call_in_process(router, route, parts, body, request_id)
                .await;
        }
        let admitted = match guard::admit(route) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                crate::spans::event(&parts, "refused before sending", || {
                    vec![KeyValue::new("reason", refusal.detail())]
                });
                return Forwarded::unsent(refusal.into_response(request_id));
            }
        };
        // Any method is retried when its connection could not be opened, so small bodies are
        // buffered whenever retries are on: a body handed to a failed attempt is gone.
        let may_retry = route.upstream.config.retry.max_retries > 0;
        let body = match self
            .request_body(body, &parts, route, may_retry, deadline)
            .await
        {
            Ok(body) => body,
            Err(refusal) => {
                admitted.verdict.record(true);
                return Forwarded::unsent(refusal.into_response(request_id));
            }
        };
        self.send(route, &parts, body, admitted, deadline, request_id)
            .await
    }

    /// Sends attempts until one is the answer: on another endpoint than the last when there is
    /// one, each within `per_try_timeout_ms` and all before `deadline`.
    async fn send(
        &self,
        route: &Route,
        parts: &Parts,
        body: RequestBody,
        admitted: Admitted<'_>,
        deadline: Instant,
        request_id: &HeaderValue,
    ) -> Forwarded {
        let upstream = &route.upstream;
        let Admitted { verdict, slot } = admitted;
        let spare = body.replay();
        let mut body = Some(body);
        let path = route.upstream_uri(&parts.uri);
        let mut request = retry::Request {
            idempotent: retry::safe_to_repeat(parts),
            attempt: 0,
            max_retries: upstream.config.retry.max_retries,
            replayable: spare.is_some(),
        };
        let mut previous: Option<Arc<Endpoint>> = None;
        loop {
            let Ok(endpoint) = upstream.pick(previous.as_deref()) else {
                crate::spans::event(parts, "no instance to send to", Vec::new);
                verdict.record(false);
                let response = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this part of the shop has no instance running",
                );
                return Forwarded {
                    response: response.into_response(request_id),
                    endpoint: None,
                    attempts: request.attempt,
                };
            };
            let Some(this_body) = body
                .take()
                .or_else(|| spare.as_ref().and_then(RequestBody::replay))
            else {
                return Forwarded {
                    response: problem(
                        StatusCode::BAD_GATEWAY,
                        "the request could not be sent again",
                    )
                    .into_response(request_id),
                    endpoint: None,
                    attempts: request.attempt,
                };
            };
            request.attempt += 1;
            route.metrics.attempts.increment(1);
            let in_flight = OwnedInFlight::new(Arc::clone(&endpoint));
            let per_try = ms(upstream.config.per_try_timeout_ms)
                .min(deadline.saturating_duration_since(Instant::now()));
            let outcome = self
                .attempt(
                    upstream,
                    &endpoint,
                    parts,
                    &path,
                    this_body,
                    (per_try, request.attempt),
                )
                .await;
            let upstream_ok = outcome.upstream_ok();
            upstream.record(&endpoint, upstream_ok);
            let decision = retry_decision(&outcome, request, || retry::Timing {
                backoff: retry::backoff(&upstream.config.retry, request.attempt),
                time_left: deadline.saturating_duration_since(Instant::now()),
            });
            if let Decision::Retry { wait, from_budget } = decision
                && (!from_budget || upstream.budget.withdraw(upstream.clock.now_ms()))
            {
                route.metrics.retries.increment(1);
                crate::spans::event(parts, "retry", || {
                    vec![
                        KeyValue::new("souk.attempt", i64::from(request.attempt)),
                        KeyValue::new("outcome", outcome.name()),
                        KeyValue::new(
                            "wait_ms",
                            i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                        ),
                    ]
                });
                tokio::time::sleep(wait).await;
                previous = Some(endpoint);
                continue;
            }
            verdict.record(upstream_ok);
            upstream.publish_breaker_state();
            return Forwarded {
                response: outcome.into_response(upstream, &endpoint, request_id, (slot, in_flight)),
                endpoint: Some(endpoint),
                attempts: request.attempt,
            };
        }
    }

    /// Sends one attempt (the `n`th) to `endpoint`, within `timeout`.
    async fn attempt(
        &self,
        upstream: &Upstream,
        endpoint: &Endpoint,
        parts: &Parts,
        path: &Uri,
        body: RequestBody,
        (timeout, n): (Duration, u32),
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
        let span = crate::spans::attempt(
            parts,
            &upstream.name,
            endpoint.addr,
            n,
            request.headers_mut(),
        );
        let outcome = self.exchange(upstream, endpoint, request, timeout).await;
        if span.is_some() {
            let status = match &outcome {
                Outcome::Answered(r) | Outcome::Overloaded(r) | Outcome::Failed(r) => {
                    Some(r.status())
                }
                _ => None,
            };
            let failure = status.is_none().then(|| outcome.name());
            crate::spans::end_attempt(span, status, failure);
        }
        outcome
    }

    /// Sends `request` to `endpoint` and sorts how it went.
    async fn exchange(
        &self,
        upstream: &Upstream,
        endpoint: &Endpoint,
        request: Request<RequestBody>,
        timeout: Duration,
    ) -> Outcome {
        let protocol = upstream.config.protocol;
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
            Ok(Err(SendError::Http(err)))
                if caused_by::<http_body_util::LengthLimitError>(&err) =>
            {
                Outcome::BodyTooLarge
            }
            Ok(Err(SendError::Http(err))) if caused_by::<crate::body::ClientBodyError>(&err) => {
                Outcome::BadClientBody
            }
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

/// Whether `err` or one of its sources is an `E`: the client's own body failing
/// ([`crate::body::ClientBodyError`]) or going over the route's limit.
fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if err.is::<E>() {
            return true;
        }
        source = err.source();
    }
    false
}
