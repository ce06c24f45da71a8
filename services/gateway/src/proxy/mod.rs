//! The request path: route, guard (faults, breaker, concurrency limit), forward with retries,
//! and answer — streaming bodies both ways, never parsing them.
//!
//! One `Proxy` lives on each proxy thread, with that thread's own upstream connection pools;
//! the routing table and upstream state are shared by all threads.

mod composed;
mod forward;
mod in_process;
mod policy;
mod problem;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::ResponseBody;
use crate::clock::Clock;
use crate::headers;
use crate::pool::Pool;
use crate::table::{Match, Table};
use crate::upstream::InProcess;

use problem::{Problem, problem};

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
}
