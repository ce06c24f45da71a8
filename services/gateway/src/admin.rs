//! The admin listener (loopback by default): upstream and breaker state, endpoint replacement,
//! configuration and reload, fault injection, and the gateway's own health and metrics.
//!
//! Whoever can call it can repoint an upstream at their own listener (identity: every password
//! would arrive there) or serve their own key set, so every call but `/healthz` and `/readyz`
//! wants `Authorization: Bearer <admin token>` (compared in constant time), and both listeners
//! answer only to a `Host` that is an IP address, `localhost` or a name in `server.admin_hosts`
//! (a web page reaching them by DNS rebinding sends its own name). The read-only listener
//! (`server.metrics_listen`) serves the map, `/upstreams`, the traces, `/metrics` and health without a token,
//! for a browser and for monitoring; nothing there changes anything.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /map` | the service map: a live page of every upstream and instance (polls `/upstreams`) |
//! | `GET /upstreams` | every upstream: endpoints with health, ejection, in-flight; breaker state; answers given |
//! | `PUT /upstreams/{name}/endpoints` `{"endpoints": ["127.0.0.1:8101"]}` | replace an upstream's endpoints |
//! | `GET /config` | the configuration in force, as JSON |
//! | `PUT /config` (TOML body) | validate and apply a new configuration |
//! | `POST /reload` | re-read the configuration file and apply it |
//! | `GET /faults`; `PUT`/`DELETE /faults/routes/{name}`, `/faults/upstreams/{name}` | fault injection |
//! | `GET /healthz`, `/readyz`, `/metrics` | the gateway's own health and Prometheus metrics |
//! | `GET /traces`, `/traces/{trace_id}`, `/waterfall` | the spans received (see `traces`) |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use souk_chassis::{FieldError, Json, Path, Problem};

use crate::config::{ConfigError, GatewayConfig};
use crate::fault::Fault;
use crate::proxy::Shared;
use crate::table::Table;

/// What the admin handlers reach.
#[derive(Debug, Clone)]
pub struct Admin {
    /// State shared with the proxy threads.
    pub shared: Arc<Shared>,
    /// The file `POST /reload` re-reads, if the gateway was started from one.
    pub config_path: Option<PathBuf>,
    /// The bearer token every admin call must carry; `None`: the admin API refuses every call.
    pub token: Option<souk_chassis::Secret>,
    /// The spans received (`[traces]`), read at `/traces` and `/waterfall`.
    pub traces: Option<Arc<crate::traces::TraceStore>>,
}

/// The admin routes, each wanting the admin token (the caller wraps them in the chassis stack
/// and the `Host` check).
pub fn router(admin: Admin) -> Router {
    let (token, traces) = (admin.token.clone(), admin.traces.clone());
    Router::new()
        .route("/map", get(map_page))
        .route("/upstreams", get(upstreams_list))
        .route("/upstreams/{name}/endpoints", put(endpoints_put))
        .route("/config", get(config_get).put(config_put))
        .route("/reload", post(reload_post))
        .route("/faults", get(faults_list))
        .route("/faults/{kind}/{name}", put(fault_put).delete(fault_delete))
        .with_state(admin)
        .merge(crate::traces::router(traces))
        .route_layer(axum::middleware::from_fn_with_state(token, require_token))
}

/// The read-only routes of the metrics listener: the service map and what it polls. No token:
/// a browser opens the map as it is; nothing here changes anything.
pub fn read_only_router(admin: Admin) -> Router {
    let traces = admin.traces.clone();
    Router::new()
        .route("/map", get(map_page))
        .route("/upstreams", get(upstreams_list))
        .with_state(admin)
        .merge(crate::traces::router(traces))
}

/// Refuses a call without the admin token: 401 with a `Bearer` challenge, or 403 when no token
/// is configured at all (the admin API is then closed).
async fn require_token(
    State(token): State<Option<souk_chassis::Secret>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = token.filter(|t| !t.expose().is_empty()) else {
        return Problem::typed(StatusCode::FORBIDDEN, "admin-closed", "Admin API closed")
            .with_detail("no admin token is configured (server.admin_token_file or SOUK_GATEWAY_ADMIN_TOKEN)")
            .into_response();
    };
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, value)| value.trim());
    let valid = presented.is_some_and(|presented| {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            presented.as_bytes(),
            token.expose().as_bytes(),
        )
        .is_ok()
    });
    if !valid {
        tracing::warn!(path = %request.uri().path(), "admin call without the admin token refused");
        let challenge = match presented {
            Some(_) => "Bearer realm=\"souk-gateway-admin\", error=\"invalid_token\"",
            None => "Bearer realm=\"souk-gateway-admin\"",
        };
        return Problem::typed(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            .with_detail("the admin API wants Authorization: Bearer <admin token>")
            .with_header(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(challenge),
            )
            .into_response();
    }
    next.run(request).await
}

/// Answers only requests whose `Host` is an IP address, `localhost` or one of `hosts`: a page
/// that reaches a listener through DNS rebinding carries its own name, and gets a 421.
pub async fn check_host(
    State(hosts): State<Arc<Vec<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_name);
    let allowed = host.is_some_and(|name| {
        name.parse::<std::net::IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    });
    if !allowed {
        tracing::warn!(host = ?host, "admin listener called with a foreign Host: refused");
        return Problem::typed(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected",
            "Misdirected request",
        )
        .with_detail("this listener answers only to its address, localhost or server.admin_hosts")
        .into_response();
    }
    next.run(request).await
}

/// The name part of a `Host` value: `[::1]:9901` → `::1`, `localhost:9901` → `localhost`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    }
}

/// Applies a new configuration: the listeners cannot move without a restart; everything else can.
/// In-flight requests finish on the table they started with.
pub fn apply(shared: &Shared, config: GatewayConfig) -> Result<(), ConfigError> {
    let current = shared.table.load_full();
    if config.server.listen != current.config.server.listen
        || config.server.admin_listen != current.config.server.admin_listen
        || config.server.metrics_listen != current.config.server.metrics_listen
    {
        return Err(ConfigError::Invalid {
            key: "server.listen".into(),
            message: "listeners cannot change on reload; restart the gateway".into(),
        });
    }
    let table = Table::build(config, Some(&current), &shared.clock);
    shared.table.store(Arc::new(table));
    tracing::info!("configuration applied");
    Ok(())
}

/// Re-reads `path` and applies it.
pub fn reload(shared: &Shared, path: &std::path::Path) -> Result<(), ConfigError> {
    apply(shared, GatewayConfig::load(path)?)
}

#[derive(Debug, Serialize)]
struct UpstreamView {
    name: String,
    /// Served by a router in the gateway's own process (`souk monolith`): `endpoints` unused.
    in_process: bool,
    in_flight: usize,
    max_in_flight: usize,
    breaker: crate::upstream::BreakerState,
    /// Answers clients got through this upstream's routes, since the gateway started.
    answered: u64,
    /// Of those, the 5xx ones.
    failed: u64,
    endpoints: Vec<EndpointView>,
}

#[derive(Debug, Serialize)]
struct EndpointView {
    addr: SocketAddr,
    available: bool,
    healthy: bool,
    ejected_for_ms: u64,
    times_ejected: u32,
    in_flight: usize,
    consecutive_failures: u32,
    requests: u64,
    failures: u64,
}

async fn upstreams_list(State(admin): State<Admin>) -> Json<Vec<UpstreamView>> {
    let table = admin.shared.table.load_full();
    let views = table
        .upstreams
        .values()
        .map(|u| {
            let now = u.clock.now_ms();
            UpstreamView {
                name: u.name.to_string(),
                in_process: admin.shared.in_process.contains_key(&*u.name),
                in_flight: u.in_flight(),
                max_in_flight: u.config.max_in_flight,
                breaker: u.breaker.state(),
                answered: u.traffic.answered.load(Ordering::Relaxed),
                failed: u.traffic.failed.load(Ordering::Relaxed),
                endpoints: u
                    .endpoints()
                    .iter()
                    .map(|e| EndpointView {
                        addr: e.addr,
                        available: e.available(now),
                        healthy: e.healthy.load(Ordering::Relaxed),
                        ejected_for_ms: e
                            .ejected_until_ms
                            .load(Ordering::Relaxed)
                            .saturating_sub(now),
                        times_ejected: e.times_ejected.load(Ordering::Relaxed),
                        in_flight: e.in_flight.load(Ordering::Relaxed),
                        consecutive_failures: e.consecutive_failures.load(Ordering::Relaxed),
                        requests: e.requests.load(Ordering::Relaxed),
                        failures: e.failures.load(Ordering::Relaxed),
                    })
                    .collect(),
            }
        })
        .collect();
    Json(views)
}

/// The service map: one self-contained page (its style and script inline, nothing fetched from
/// elsewhere) that polls `/upstreams` every second.
async fn map_page() -> impl IntoResponse {
    (
        [
            (http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (http::header::CACHE_CONTROL, "no-store"),
        ],
        include_str!("../assets/map.html"),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointsBody {
    endpoints: Vec<SocketAddr>,
}

async fn endpoints_put(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    Json(body): Json<EndpointsBody>,
) -> Result<Json<Vec<UpstreamView>>, Problem> {
    if body.endpoints.is_empty() {
        return Err(Problem::validation(vec![FieldError::new(
            "endpoints",
            "give at least one endpoint",
        )]));
    }
    let table = admin.shared.table.load_full();
    let upstream = table
        .upstreams
        .get(&name)
        .ok_or_else(|| Problem::not_found(format!("no upstream named {name:?}")))?;
    upstream.set_endpoints(&body.endpoints);
    tracing::info!(upstream = %name, endpoints = ?body.endpoints, "endpoints replaced through the admin API");
    Ok(upstreams_list(State(admin)).await)
}

/// The configuration in force, credentials redacted (the Redis URL's password).
async fn config_get(State(admin): State<Admin>) -> Json<GatewayConfig> {
    let mut config = admin.shared.table.load().config.clone();
    config.server.redis_url = config.server.redis_url.as_deref().map(redact_url);
    Json(config)
}

/// `scheme://user:password@host/…` with the password as `***` (and a bare `scheme://secret@host`
/// as `***@host`); URLs without credentials unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let userinfo = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{scheme}://{userinfo}@{host}{tail}")
}

async fn config_put(State(admin): State<Admin>, body: String) -> Response {
    match GatewayConfig::parse(&body).and_then(|config| apply(&admin.shared, config)) {
        Ok(()) => Json(serde_json::json!({ "status": "applied" })).into_response(),
        Err(err) => config_problem(&err).into_response(),
    }
}

async fn reload_post(State(admin): State<Admin>) -> Response {
    let Some(path) = &admin.config_path else {
        return Problem::typed(
            StatusCode::CONFLICT,
            "no-config-file",
            "No configuration file",
        )
        .with_detail("the gateway was not started from a file; PUT /config instead")
        .into_response();
    };
    match reload(&admin.shared, path) {
        Ok(()) => Json(serde_json::json!({ "status": "reloaded" })).into_response(),
        Err(err) => config_problem(&err).into_response(),
    }
}

fn config_problem(err: &ConfigError) -> Problem {
    Problem::typed(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-config",
        "Invalid configuration",
    )
    .with_detail(err.to_string())
}

#[derive(Debug, Serialize)]
struct FaultsView {
    routes: std::collections::BTreeMap<String, Fault>,
    upstreams: std::collections::BTreeMap<String, Fault>,
}

async fn faults_list(State(admin): State<Admin>) -> Json<FaultsView> {
    let table = admin.shared.table.load_full();
    Json(FaultsView {
        routes: table
            .routes()
            .iter()
            .filter_map(|r| Some((r.name.to_string(), r.faults.get()?)))
            .collect(),
        upstreams: table
            .upstreams
            .iter()
            .filter_map(|(n, u)| Some((n.clone(), u.faults.get()?)))
            .collect(),
    })
}

fn faults_of(admin: &Admin, kind: &str, name: &str) -> Result<crate::fault::Faults, Problem> {
    let table = admin.shared.table.load_full();
    let found = match kind {
        "routes" => table.route(name).map(|r| r.faults.clone()),
        "upstreams" => table.upstreams.get(name).map(|u| u.faults.clone()),
        _ => return Err(Problem::not_found("faults are set on routes or upstreams")),
    };
    found.ok_or_else(|| {
        Problem::not_found(format!("no {} named {name:?}", kind.trim_end_matches('s')))
    })
}

async fn fault_put(
    State(admin): State<Admin>,
    Path((kind, name)): Path<(String, String)>,
    Json(fault): Json<Fault>,
) -> Result<Json<Fault>, Problem> {
    fault
        .validate()
        .map_err(|m| Problem::validation(vec![FieldError::new("fault", m)]))?;
    faults_of(&admin, &kind, &name)?.set(Some(fault.clone()));
    tracing::warn!(%kind, %name, ?fault, "fault injected");
    Ok(Json(fault))
}

async fn fault_delete(
    State(admin): State<Admin>,
    Path((kind, name)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    faults_of(&admin, &kind, &name)?.set(None);
    tracing::info!(%kind, %name, "fault cleared");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:s3cret@redis:6379/0"),
            "redis://:***@redis:6379/0"
        );
        assert_eq!(
            redact_url("redis://user:p@ss@host:6379"),
            "redis://user:***@host:6379"
        );
        assert_eq!(redact_url("redis://token@host"), "redis://***@host");
        assert_eq!(redact_url("redis://host:6379/0"), "redis://host:6379/0");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("127.0.0.1:9901"), "127.0.0.1");
        assert_eq!(host_name("[::1]:9901"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
        assert_eq!(host_name("evil.example:9901"), "evil.example");
    }
}
