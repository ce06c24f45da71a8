//! The request path: route, guard (faults, breaker, concurrency limit), forward with retries,
//! and answer — streaming bodies both ways, never parsing them.
//!
//! One `Proxy` lives on each proxy thread, with that thread's own upstream connection pools;
//! the routing table and upstream state are shared by all threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use tokio::time::Instant;

use crate::aggregate::Aggregate;
use crate::body::{RequestBody, ResponseBody};
use crate::clock::Clock;
use crate::config::{Protocol, ms};
use crate::headers;
use crate::pool::{Pool, SendError, Target};
use crate::table::{Match, Route, Table};
use crate::upstream::{Admission, Endpoint, InProcess, OwnedInFlight, Upstream};

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// What every proxy thread shares.
#[derive(Debug)]
pub struct Shared {
    /// The routing table; replaced whole on reload.
    pub table: ArcSwap<Table>,
    /// The time base of ejections and breakers.
    pub clock: Clock,
    /// Whether to write access-log lines.
    pub access_log: bool,
    /// Upstreams served in this process (`souk monolith`): their routers are called directly,
    /// with no socket, and their configured endpoints are never dialled.
    pub in_process: InProcess,
    /// Client connections open, for the caps.
    pub connections: Arc<crate::connections::Connections>,
}

/// One proxy thread's request handler and upstream connection pools.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    pool: Pool,
    tokens: crate::auth::TokenCache,
    /// This thread's Redis connection, made on first use by a shared rate limit.
    redis: tokio::sync::OnceCell<Option<redis::aio::ConnectionManager>>,
}

/// What a forwarded request's body comes from.
pub(crate) enum ClientBody {
    /// The client's own, streamed.
    Incoming(Incoming),
    /// None: a request the gateway makes itself (aggregate parts).
    Empty,
}

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

impl Proxy {
    /// A proxy with its own, empty, connection pools.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            pool: Pool::default(),
            tokens: crate::auth::TokenCache::default(),
            redis: tokio::sync::OnceCell::new(),
        }
    }

    /// Serves one client request. `client_ip` is `client`'s address as a header value, made once
    /// per connection.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
        client_ip: &HeaderValue,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let target = crate::target::check(request.uri())
            .and_then(|()| crate::target::check_host(request.headers(), request.version()));
        if let Err(reason) = target {
            let response = problem(StatusCode::BAD_REQUEST, reason);
            return self.unrouted(response, &request, client, started);
        }
        let table = self.shared.table.load_full();
        let forwarded = headers::forwarded_client(request.headers(), client, |ip| table.trusts(ip));
        let (client, client_ip) = match &forwarded {
            Some((forwarded_for, chain)) => (*forwarded_for, chain),
            None => (client, client_ip),
        };
        let method = request.method().clone();
        if let Some(merger) = table
            .openapi
            .as_ref()
            .filter(|m| m.config.path == request.uri().path())
            && matches!(method, Method::GET | Method::HEAD)
        {
            return match merger.document(&table, &self.shared.in_process).await {
                Ok(document) => {
                    let mut response = Response::new(ResponseBody::whole(document));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    response
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot build the merged OpenAPI document");
                    problem(
                        StatusCode::BAD_GATEWAY,
                        "the API description is unavailable right now",
                    )
                    .into_response(&headers::request_id_of(request.headers()))
                }
            };
        }
        if let Some((aggregate, id)) = table.aggregate(&method, request.uri().path()) {
            let id = id.to_owned();
            let aggregate = Arc::clone(aggregate);
            return self
                .aggregate(&table, &aggregate, &id, request, client, client_ip)
                .await;
        }
        let route = match table.find(&method, request.uri().path()) {
            Match::Found(route) => Arc::clone(route),
            Match::MethodNotAllowed(allowed) => {
                let allow = allowed
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let response = problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "this method is not allowed here; see the Allow header",
                )
                .with_header(header::ALLOW, &allow);
                return self.unrouted(response, &request, client, started);
            }
            Match::NotFound => {
                let response = problem(StatusCode::NOT_FOUND, "no route for this path");
                return self.unrouted(response, &request, client, started);
            }
        };
        let (mut parts, body) = request.into_parts();
        let request_id = headers::prepare_request(&mut parts.headers, client_ip);
        let uri = parts.uri.clone();
        let (response, endpoint, attempts) = match self
            .authorize(&table, &route, client, &mut parts.headers)
            .await
        {
            Ok(()) => {
                self.forward(&route, parts, ClientBody::Incoming(body), &request_id)
                    .await
            }
            Err(problem) => (problem.into_response(&request_id), None, 0),
        };
        let status = response.status();
        route.metrics.record(&method, status, started.elapsed());
        if self.shared.access_log {
            crate::access_log::write(&crate::access_log::Line {
                request_id: &request_id,
                client,
                method: &method,
                path: uri.path(),
                route: &route.name,
                upstream: &route.upstream.name,
                endpoint: endpoint.as_ref().map(|e| &e.host),
                status,
                attempts,
                elapsed: started.elapsed(),
            });
        }
        response
    }

    /// Answers an aggregation endpoint: its parts fetched in parallel, each within its deadline.
    async fn aggregate(
        &self,
        table: &Table,
        aggregate: &Aggregate,
        id: &str,
        request: Request<Incoming>,
        client: SocketAddr,
        client_ip: &HeaderValue,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let (mut parts, _) = request.into_parts();
        let request_id = headers::prepare_request(&mut parts.headers, client_ip);
        let route = &aggregate.route;
        let response = match self
            .authorize(table, route, client, &mut parts.headers)
            .await
        {
            Err(problem) => problem.into_response(&request_id),
            Ok(()) => {
                let fetches = aggregate
                    .parts
                    .iter()
                    .map(|part| self.fetch_part(part, &parts, id, &request_id));
                let answers = futures::future::join_all(fetches).await;
                let composed = crate::aggregate::compose(aggregate, answers, route.timeout);
                let (mut head, mut body) = composed.unwrap_or_else(|failed| failed).into_parts();
                // The answer is the gateway's own, so the gateway codes it for the client.
                let coding =
                    crate::encoding::negotiate(parts.headers.get_all(header::ACCEPT_ENCODING));
                if let Some(compressed) = crate::encoding::compress(coding, &body)
                    && let Some(name) = coding.header_value()
                {
                    body = compressed;
                    head.headers.insert(header::CONTENT_ENCODING, name);
                }
                head.headers
                    .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                headers::prepare_response(&mut head.headers, &request_id);
                Response::from_parts(head, ResponseBody::whole(body))
            }
        };
        let status = response.status();
        route.metrics.record(&method, status, started.elapsed());
        if self.shared.access_log {
            crate::access_log::write(&crate::access_log::Line {
                request_id: &request_id,
                client,
                method: &method,
                path: parts.uri.path(),
                route: &route.name,
                upstream: "aggregate",
                endpoint: None,
                status,
                attempts: u32::try_from(aggregate.parts.len()).unwrap_or(u32::MAX),
                elapsed: started.elapsed(),
            });
        }
        response
    }

    /// One part of an aggregate, read whole within the part's deadline.
    async fn fetch_part(
        &self,
        part: &crate::aggregate::Part,
        client: &Parts,
        id: &str,
        request_id: &HeaderValue,
    ) -> crate::aggregate::PartAnswer {
        let path = Aggregate::part_path(part, id);
        let Some(parts) = crate::aggregate::part_request(client, &path) else {
            return crate::aggregate::PartAnswer::Late;
        };
        let started = Instant::now();
        let fetch = async {
            let (response, _, _) = self
                .forward(&part.route, parts, ClientBody::Empty, request_id)
                .await;
            crate::aggregate::read_part(response).await
        };
        let answer = tokio::time::timeout(part.route.timeout, fetch).await;
        let answer = answer.unwrap_or(crate::aggregate::PartAnswer::Late);
        let status = match &answer {
            crate::aggregate::PartAnswer::Json(_) => StatusCode::OK,
            crate::aggregate::PartAnswer::Unusable(unusable) => unusable.status(),
            crate::aggregate::PartAnswer::Late => StatusCode::GATEWAY_TIMEOUT,
        };
        part.route
            .metrics
            .record(&Method::GET, status, started.elapsed());
        answer
    }

    /// Answers a request no route takes, counting and logging it like any other.
    fn unrouted(
        &self,
        problem: Problem,
        request: &Request<Incoming>,
        client: SocketAddr,
        started: Instant,
    ) -> Response<ResponseBody> {
        let request_id = headers::request_id_of(request.headers());
        let status = problem.status;
        crate::metrics::record_unrouted(status);
        if self.shared.access_log {
            crate::access_log::write(&crate::access_log::Line {
                request_id: &request_id,
                client,
                method: request.method(),
                path: request.uri().path(),
                route: "-",
                upstream: "-",
                endpoint: None,
                status,
                attempts: 0,
                elapsed: started.elapsed(),
            });
        }
        problem.into_response(&request_id)
    }

    /// Applies the route's policy. A verified caller is passed on as `x-souk-user-id` and
    /// `x-souk-role` (client-sent ones were stripped); services still verify the token themselves.
    /// On a public route a bad token is ignored rather than refused.
    async fn authorize(
        &self,
        table: &Table,
        route: &Route,
        client: SocketAddr,
        headers: &mut http::HeaderMap,
    ) -> Result<(), Problem> {
        use crate::auth::Refusal;
        use crate::config::Policy;
        // Per address first: a flood from one address costs a bucket lookup, not a signature check.
        let mut redis = match route.limits.is_shared() {
            true => self.redis(table).await,
            false => None,
        };
        match redis.as_mut() {
            Some(redis) => route
                .limits
                .check_client_shared(redis, client.ip())
                .await
                .map_err(too_many)?,
            None => route.limits.check_client(client.ip()).map_err(too_many)?,
        }
        let verdict = match (
            &table.verifier,
            table
                .verifier
                .as_ref()
                .and_then(|v| table.upstreams.get(&v.config.jwks_upstream)),
        ) {
            (Some(verifier), Some(jwks)) => {
                let in_process = self.shared.in_process.get(&verifier.config.jwks_upstream);
                verifier
                    .verify(headers, &self.tokens, jwks, in_process)
                    .await
            }
            _ => Err(Refusal::Missing),
        };
        let caller = match (route.policy, verdict) {
            (Policy::Public, Ok(caller)) => caller,
            (Policy::Public, Err(_)) => return Ok(()),
            (_, Err(Refusal::Missing)) => {
                return Err(problem(
                    StatusCode::UNAUTHORIZED,
                    "sign in first: send Authorization: Bearer <access token>",
                )
                .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"souk\""));
            }
            (_, Err(Refusal::Invalid)) => {
                return Err(problem(
                    StatusCode::UNAUTHORIZED,
                    "the access token is not valid or has expired",
                )
                .with_header(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"souk\", error=\"invalid_token\"",
                ));
            }
            (Policy::Admin, Ok(caller)) if caller.role != "admin" => {
                return Err(problem(
                    StatusCode::FORBIDDEN,
                    "this needs an administrator",
                ));
            }
            (_, Ok(caller)) => caller,
        };
        match redis.as_mut() {
            Some(redis) => route
                .limits
                .check_user_shared(redis, &caller.sub)
                .await
                .map_err(too_many)?,
            None => route.limits.check_user(&caller.sub).map_err(too_many)?,
        }
        if let (Ok(id), Ok(role)) = (
            HeaderValue::try_from(caller.sub),
            HeaderValue::try_from(caller.role),
        ) {
            headers.insert(headers::USER_ID, id);
            headers.insert(headers::ROLE, role);
        }
        Ok(())
    }

    /// This thread's Redis connection for shared limits (`None`, and a warning, when it cannot be
    /// made: shared limits then let requests through rather than fail them).
    async fn redis(&self, table: &Table) -> Option<redis::aio::ConnectionManager> {
        let url = table.config.server.redis_url.clone()?;
        self.redis
            .get_or_init(|| async move {
                let client = redis::Client::open(url)
                    .map_err(|e| tracing::warn!(%e, "server.redis_url is not usable"))
                    .ok()?;
                redis::aio::ConnectionManager::new(client)
                    .await
                    .map_err(|e| tracing::warn!(%e, "cannot reach Redis for shared rate limits"))
                    .ok()
            })
            .await
            .clone()
    }

    /// Forwards to the route's upstream and counts the answer in its traffic. Returns the
    /// response, the endpoint that answered last and the number of attempts.
    async fn forward(
        &self,
        route: &Arc<Route>,
        parts: Parts,
        body: ClientBody,
        request_id: &HeaderValue,
    ) -> (Response<ResponseBody>, Option<Arc<Endpoint>>, u32) {
        let answer = self.try_forward(route, parts, body, request_id).await;
        route.upstream.traffic.record(answer.0.status());
        answer
    }

    /// [`Self::forward`] without the counting.
    async fn try_forward(
        &self,
        route: &Arc<Route>,
        parts: Parts,
        body: ClientBody,
        request_id: &HeaderValue,
    ) -> (Response<ResponseBody>, Option<Arc<Endpoint>>, u32) {
        let upstream = &route.upstream;
        let deadline = Instant::now() + route.timeout;
        if declared_length(&parts).is_some_and(|length| length > route.body_limit) {
            return (too_large().into_response(request_id), None, 0);
        }
        for decision in [route.faults.decide(), upstream.faults.decide()] {
            if let Some(delay) = decision.delay {
                tokio::time::sleep(delay).await;
            }
            if let Some(status) = decision.abort {
                return (
                    problem(status, "fault injected for a chaos run").into_response(request_id),
                    None,
                    0,
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
                return (response.into_response(request_id), None, 0);
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
            return (response.into_response(request_id), None, 0);
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
                return (response.into_response(request_id), None, 0);
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
                return (response.into_response(request_id), None, attempt);
            };
            let Some(this_body) = body
                .take()
                .or_else(|| spare.as_ref().and_then(RequestBody::replay))
            else {
                break (
                    problem(
                        StatusCode::BAD_GATEWAY,
                        "the request could not be sent again",
                    )
                    .into_response(request_id),
                    None,
                    attempt,
                );
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
            break (response, answered, attempt);
        }
    }

    /// Calls an in-process upstream's router (tower `oneshot`): the same rewrite, headers, body
    /// limit and route timeout as over a socket; no pools, retries or ejection, as there is no
    /// network to fail.
    async fn call_in_process(
        &self,
        router: &axum::Router,
        route: &Route,
        mut parts: Parts,
        body: ClientBody,
        request_id: &HeaderValue,
    ) -> (Response<ResponseBody>, Option<Arc<Endpoint>>, u32) {
        use tower::ServiceExt;
        parts.uri = route.upstream_uri(&parts.uri);
        let limit = usize::try_from(route.body_limit).unwrap_or(usize::MAX);
        let body = match body {
            ClientBody::Incoming(body) => axum::body::Body::new(Limited::new(body, limit)),
            ClientBody::Empty => axum::body::Body::empty(),
        };
        let request = Request::from_parts(parts, body);
        route.metrics.attempts.increment(1);
        match tokio::time::timeout(route.timeout, router.clone().oneshot(request)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                headers::prepare_response(&mut parts.headers, request_id);
                (
                    Response::from_parts(parts, ResponseBody::in_process(body)),
                    None,
                    1,
                )
            }
            Ok(Err(never)) => match never {},
            Err(_) => (
                problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    "this part of the shop did not answer in time",
                )
                .into_response(request_id),
                None,
                1,
            ),
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

/// A problem+json answer made by the gateway.
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    detail: &'static str,
    extra: Vec<(header::HeaderName, HeaderValue)>,
}

fn problem(status: StatusCode, detail: &'static str) -> Problem {
    Problem {
        status,
        detail,
        extra: Vec::new(),
    }
}

/// 429 with `Retry-After` and the `RateLimit-*` headers of the IETF draft.
fn too_many(exceeded: crate::limit::Exceeded) -> Problem {
    let reset = exceeded
        .retry_after
        .as_secs_f64()
        .ceil()
        .max(1.0)
        .to_string();
    problem(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests; slow down and try again shortly",
    )
    .with_header(header::RETRY_AFTER, &reset)
    .with_header(
        header::HeaderName::from_static("ratelimit-limit"),
        &exceeded.limit.to_string(),
    )
    .with_header(header::HeaderName::from_static("ratelimit-remaining"), "0")
    .with_header(header::HeaderName::from_static("ratelimit-reset"), &reset)
}

fn too_large() -> Problem {
    problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is larger than this route accepts",
    )
}

impl Problem {
    fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::try_from(value) {
            self.extra.push((name, value));
        }
        self
    }

    fn into_response(self, request_id: &HeaderValue) -> Response<ResponseBody> {
        let body = souk_chassis::Problem::new(self.status).with_detail(self.detail);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(ResponseBody::whole(bytes));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(souk_chassis::problem::CONTENT_TYPE),
        );
        headers.insert(headers::REQUEST_ID, request_id.clone());
        for (name, value) in self.extra {
            headers.insert(name, value);
        }
        response
    }
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
