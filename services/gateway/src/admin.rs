//! The admin listener (loopback by default): upstream and breaker state, endpoint replacement,
//! configuration and reload, fault injection, and the gateway's own health and metrics.
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
}

/// The admin routes (the caller wraps them in the chassis stack).
pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/map", get(map_page))
        .route("/upstreams", get(upstreams_list))
        .route("/upstreams/{name}/endpoints", put(endpoints_put))
        .route("/config", get(config_get).put(config_put))
        .route("/reload", post(reload_post))
        .route("/faults", get(faults_list))
        .route("/faults/{kind}/{name}", put(fault_put).delete(fault_delete))
        .with_state(admin)
}

/// Applies a new configuration: the listeners cannot move without a restart; everything else can.
/// In-flight requests finish on the table they started with.
pub fn apply(shared: &Shared, config: GatewayConfig) -> Result<(), ConfigError> {
    let current = shared.table.load_full();
    if config.server.listen != current.config.server.listen
        || config.server.admin_listen != current.config.server.admin_listen
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

async fn config_get(State(admin): State<Admin>) -> Json<GatewayConfig> {
    Json(admin.shared.table.load().config.clone())
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
