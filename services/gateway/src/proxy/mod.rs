//! The request path: one `Proxy` per proxy thread, with that thread's own upstream connection
//! pools; the routing table and upstream state are shared by all threads. Bodies stream both
//! ways and are never parsed (aggregates excepted: `composed`).
//!
//! A request goes through these stages, in this order, with the reason for each position:
//! 1. **target** (`crate::target`): first, before anything reads the path — a target not in
//!    origin form and normal form, or a second `Host`, is a 400, so what is routed is exactly
//!    what the upstream will read;
//! 2. **whom it speaks for** (`headers::forwarded_client`): before anything keys on the client
//!    — a trusted peer's `X-Forwarded-For` names the shopper that limits and logs count;
//! 3. **the OpenAPI document** (`composed`): the gateway's own answer on its own path, before
//!    routing, since no route serves it;
//! 4. **route**: an aggregate's path first (it has a route of its own), then the most specific
//!    route; none is a 404, a wrong method a 405 with `Allow`;
//! 5. **header hygiene** (`headers::prepare_request`): before policy, so client-sent `x-souk-*`
//!    headers are gone before policy sets the verified ones, and every answer from here on
//!    carries the request id;
//! 6. **policy** (`policy`): the per-address rate limit first (a flood costs a bucket lookup,
//!    not a signature check), then the token and the route's policy, then the per-user limit,
//!    which needs the verified user;
//! 7. **guards** (`guard::check`): a declared body over the route's limit (413) and injected
//!    faults — they cost nothing and hold nothing, so they come before anything that takes a
//!    share of the upstream, and they apply to in-process upstreams too;
//! 8. **in-process upstreams** (`in_process`) leave here: called directly, with no breaker,
//!    limit, balancing or retries, as there is no network to fail;
//! 9. **admission** (`guard::admit`): the breaker, then the concurrency limit (shed rather than
//!    queue), then a deposit in the retry budget — each takes a share of the upstream that only
//!    a request about to be sent should take;
//! 10. **body** (`forward`): small bodies of retryable requests are buffered so they can be sent
//!     again — after admission, so a refused request's body is never read;
//! 11. **attempts** (`forward`, `retry`): an endpoint picked, one attempt within the per-try
//!     timeout, its outcome recorded for outlier ejection, and `retry::retry_decision` asked
//!     whether to send it again; the breaker's verdict is recorded once, for the last;
//! 12. **finish** (`Proxy::finish`): last, whatever answered — no route, the document, a
//!     route or an aggregate — one place counts the request and writes its access-log line.
//!
//! An aggregate's request leaves after stage 6 for `composed`, which sends each of its parts
//! through stages 7 to 11 on the part's own route (`<aggregate>.<part>`) and comes back to 12
//! with the composed answer. Every answer the gateway makes itself is problem+json (`problem`).

mod composed;
mod forward;
mod guard;
mod in_process;
mod policy;
mod problem;
mod retry;

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
use crate::table::{Match, Route, Table};
use crate::upstream::InProcess;

use forward::Forwarded;
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
    /// per connection. The stages, in order, are the module's doc.
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
            let refusal = problem(StatusCode::BAD_REQUEST, reason);
            return self.unrouted(refusal, &request, client, started);
        }
        let table = self.shared.table.load_full();
        let peer = client.ip();
        let on_behalf = headers::forwarded_client(request.headers(), client, |ip| table.trusts(ip));
        let (client, client_ip) = match &on_behalf {
            Some((forwarded_for, chain)) => (*forwarded_for, chain),
            None => (client, client_ip),
        };
        let (method, path) = (request.method(), request.uri().path());
        if let Some(merger) = table.openapi.as_ref().filter(|m| m.config.path == path)
            && matches!(*method, Method::GET | Method::HEAD)
        {
            return self
                .document(&table, merger, &request, client, started)
                .await;
        }
        let from = Origin {
            client,
            client_ip,
            peer,
        };
        self.route(&table, request, from, started).await
    }

    /// Routes a request to an aggregate or a route, applies its policy and forwards it.
    async fn route(
        &self,
        table: &Table,
        request: Request<Incoming>,
        from: Origin<'_>,
        started: Instant,
    ) -> Response<ResponseBody> {
        let Origin {
            client,
            client_ip,
            peer,
        } = from;
        let (method, path) = (request.method(), request.uri().path());
        // An aggregate's own route carries its policy and limits, like any route's.
        let aggregate = table
            .aggregate(method, path)
            .map(|(aggregate, id)| (Arc::clone(aggregate), id.to_owned()));
        let route = match &aggregate {
            Some((aggregate, _)) => Arc::clone(&aggregate.route),
            None => match route_for(table, method, path) {
                Ok(route) => route,
                Err(refusal) => return self.unrouted(refusal, &request, client, started),
            },
        };
        let (mut parts, body) = request.into_parts();
        let request_id = headers::prepare_request(&mut parts.headers, client_ip);
        let upstream = match aggregate {
            Some(_) => "aggregate",
            None => &route.upstream.name,
        };
        let span = crate::spans::RequestSpan::start(&mut parts, &route.name, upstream, || {
            // A trusted peer's (the storefront's) "sampled" is followed without a budget.
            table.trusts(&peer)
        });
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        let authorized = self
            .authorize(table, &route, client, &mut parts.headers)
            .await;
        let forwarded = match (authorized, &aggregate) {
            (Err(refusal), _) => Forwarded::unsent(refusal.into_response(&request_id)),
            (Ok(()), Some((aggregate, id))) => {
                self.aggregate(aggregate, id, &parts, &request_id).await
            }
            (Ok(()), None) => {
                self.forward(&route, parts, ClientBody::Incoming(body), &request_id)
                    .await
            }
        };
        let served = Served {
            request_id: &request_id,
            client,
            method: &method,
            path: uri.path(),
            started,
            by: By::Route(&route, upstream),
        };
        let (attempts, endpoint) = (
            forwarded.attempts,
            forwarded.endpoint.as_ref().map(|e| e.addr),
        );
        let mut response = self.finish(&served, forwarded);
        if let Some(span) = span {
            span.end(&mut response, attempts, endpoint);
        }
        response
    }

    /// Answers a request no route takes, counting and logging it like any other.
    fn unrouted(
        &self,
        refusal: Problem,
        request: &Request<Incoming>,
        client: SocketAddr,
        started: Instant,
    ) -> Response<ResponseBody> {
        let request_id = headers::request_id_of(request.headers());
        let served = Served::before_routing(request, &request_id, client, started, By::Nobody);
        self.finish(
            &served,
            Forwarded::unsent(refusal.into_response(&request_id)),
        )
    }

    /// The last stage of every request, whatever answered it: its metrics and its access-log
    /// line.
    fn finish(&self, served: &Served<'_>, forwarded: Forwarded) -> Response<ResponseBody> {
        let status = forwarded.response.status();
        let elapsed = served.started.elapsed();
        let (route, upstream) = match served.by {
            By::Nobody => {
                crate::metrics::record_unrouted(status);
                ("-", "-")
            }
            By::Document => ("-", "-"),
            By::Route(route, upstream) => {
                route.metrics.record(served.method, status, elapsed);
                (&*route.name, upstream)
            }
        };
        if self.shared.access_log {
            crate::access_log::write(&crate::access_log::Line {
                request_id: served.request_id,
                client: served.client,
                method: served.method,
                path: served.path,
                route,
                upstream,
                endpoint: forwarded.endpoint.as_ref().map(|e| &e.host),
                status,
                attempts: forwarded.attempts,
                elapsed,
            });
        }
        forwarded.response
    }
}

/// Whom a request speaks for, as routing needs it.
struct Origin<'a> {
    /// The shopper: the peer, or the one a trusted peer forwards for.
    client: SocketAddr,
    /// Its `X-Forwarded-For` chain.
    client_ip: &'a HeaderValue,
    /// The peer's address (a trusted peer's trace is always followed).
    peer: std::net::IpAddr,
}

/// One request as its metrics and access-log line see it.
struct Served<'a> {
    request_id: &'a HeaderValue,
    client: SocketAddr,
    method: &'a Method,
    /// The path as the client sent it.
    path: &'a str,
    started: Instant,
    by: By<'a>,
}

impl<'a> Served<'a> {
    /// A request answered before routing, as the client sent it.
    fn before_routing(
        request: &'a Request<Incoming>,
        request_id: &'a HeaderValue,
        client: SocketAddr,
        started: Instant,
        by: By<'a>,
    ) -> Self {
        Self {
            request_id,
            client,
            method: request.method(),
            path: request.uri().path(),
            started,
            by,
        }
    }
}

/// What answered a request, for its metrics and the log's `route=` and `upstream=`.
enum By<'a> {
    /// No route: counted in `gateway_unrouted_requests_total`.
    Nobody,
    /// The merged OpenAPI document: logged, counted nowhere.
    Document,
    /// A route, with the upstream named in the log (`aggregate` for an aggregate's own route).
    Route(&'a Route, &'a str),
}

/// The route that owns `path` for `method`, or the 405 or 404 that answers it.
fn route_for(table: &Table, method: &Method, path: &str) -> Result<Arc<Route>, Problem> {
    match table.find(method, path) {
        Match::Found(route) => Ok(Arc::clone(route)),
        Match::MethodNotAllowed(allowed) => {
            let allow = allowed
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            Err(problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "this method is not allowed here; see the Allow header",
            )
            .with_header(header::ALLOW, &allow))
        }
        Match::NotFound => Err(problem(StatusCode::NOT_FOUND, "no route for this path")),
    }
}
