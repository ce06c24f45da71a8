//! The supervisor's control API on a loopback port, for `souk scale` (and anything else that
//! wants to see the processes).
//!
//! `GET /processes`; `PUT /services/{name}/instances` `{"count": 2}`;
//! `PUT /services/{name}/hold` `{"held": true}` keeps the service's processes down once they exit
//! (`souk chaos --kill S --for D`), `{"held": false}` restarts them at once.

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
        .with_state(shop);
    let router = souk_chassis::http::stack(api, &souk_chassis::HttpConfig::default());
    tokio::spawn(souk_chassis::serve(listener, router, shutdown));
    Ok(addr)
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
