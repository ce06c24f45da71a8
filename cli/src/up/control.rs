//! The supervisor's control API on a loopback port, for `souk scale` (and anything else that
//! wants to see the processes).
//!
//! `GET /processes`; `PUT /services/{name}/instances` `{"count": 2}`;
//! `PUT /services/{name}/hold` `{"held": true}` keeps the service's processes down once they exit
//! (`souk chaos --kill S --for D`), `{"held": false}` restarts them at once.
//!
//! Every call wants `Authorization: Bearer <the run's admin token>` (`<data dir>/admin-token`):
//! any local user could otherwise stop or hold the shop's services.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use souk_chassis::{FieldError, Json, Path, Problem, Shutdown};

use super::Shop;
use crate::services::Service;

/// Serves the control API until `shutdown`; returns its address.
pub(crate) async fn serve(shop: Arc<Shop>, shutdown: Shutdown) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot open the control port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let api = Router::new()
        .route("/processes", get(processes_list))
        .route("/services/{name}/instances", put(instances_put))
        .route("/services/{name}/hold", put(hold_put))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shop),
            require_token,
        ))
        .with_state(shop);
    let router = souk_chassis::http::stack(api, &souk_chassis::HttpConfig::default());
    tokio::spawn(souk_chassis::serve(listener, router, shutdown));
    Ok(addr)
}

/// Refuses a call without this run's admin token (401, compared in constant time).
async fn require_token(
    State(shop): State<Arc<Shop>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let valid = aws_lc_rs::constant_time::verify_slices_are_equal(
        presented.trim().as_bytes(),
        shop.admin_token.as_bytes(),
    )
    .is_ok();
    if !valid {
        return Problem::typed(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
        )
        .with_detail("the control API wants Authorization: Bearer <the run's admin token>")
        .into_response();
    }
    next.run(request).await
}

/// One process, as `souk status` and `souk scale` show it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProcessView {
    pub(crate) service: String,
    pub(crate) label: String,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) restarts: u32,
}

async fn processes_list(State(shop): State<Arc<Shop>>) -> Json<Vec<ProcessView>> {
    let views = shop
        .processes()
        .await
        .into_iter()
        .map(|(service, p)| ProcessView {
            service,
            label: p.spec.label.clone(),
            pid: p.pid(),
            addr: p.spec.addr,
            restarts: p.restarts(),
        })
        .collect();
    Json(views)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scale {
    count: usize,
}

async fn instances_put(
    State(shop): State<Arc<Shop>>,
    Path(name): Path<String>,
    Json(scale): Json<Scale>,
) -> Result<Json<Vec<SocketAddr>>, Problem> {
    let service = Service::parse(&name)
        .ok_or_else(|| Problem::not_found(format!("no service named {name:?}")))?;
    shop.scale(service, scale.count)
        .await
        .map(Json)
        .map_err(|message| Problem::validation(vec![FieldError::new("count", message)]))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hold {
    held: bool,
}

/// Holds (or releases) every process of a service; the labels of the processes held.
async fn hold_put(
    State(shop): State<Arc<Shop>>,
    Path(name): Path<String>,
    Json(hold): Json<Hold>,
) -> Result<Json<Vec<String>>, Problem> {
    let processes: Vec<_> = shop
        .processes()
        .await
        .into_iter()
        .filter(|(service, _)| *service == name)
        .collect();
    if processes.is_empty() {
        return Err(Problem::not_found(format!("no service named {name:?}")));
    }
    for (_, process) in &processes {
        process.hold(hold.held);
    }
    Ok(Json(
        processes
            .iter()
            .map(|(_, p)| p.spec.label.clone())
            .collect(),
    ))
}
