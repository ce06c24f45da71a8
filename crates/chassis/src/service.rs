//! The skeleton every service shares, so that a service is its domain and one `impl`.
//!
//! A service describes itself as a [`Service`]: its name, how it reads its configuration, how it
//! starts on a [`Wiring`], and its OpenAPI document. Everything around that is here, once:
//!
//! - [`main`] is a service binary's whole `main` (`souk-catalog` serves, `souk-catalog openapi`
//!   prints the document), and [`serve`] is what `souk serve catalog` runs: read the
//!   configuration, bind, start, serve until SIGTERM or Ctrl-C, drain, close the databases.
//! - [`launch`] starts a service without serving it, for a host that serves it its own way: the
//!   monolith mounts the router behind its in-process gateway.
//! - A [`Wiring`] is how a service reaches its neighbours and when it stops. Over the network
//!   (its own process) a neighbour is an HTTP client at the URL its configuration names; in one
//!   process it is the neighbour's router, bound late ([`Local`]), so services start in any
//!   order and a call to one not started yet fails as "unavailable", as a process not yet
//!   listening would.
//! - A [`Running`] service is its router, its health and the databases to close when it stops.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::client::{ClientConfig, ServiceClient};
use crate::config::ConfigError;
use crate::db::DbError;
use crate::{Database, Env, Health, HttpConfig, Shutdown};

/// A service, as the skeleton runs it.
pub trait Service: 'static {
    /// Its name: its config section (`SOUK_<NAME>__*`), its log and metrics label, its service
    /// audience.
    const NAME: &'static str;

    /// Its configuration.
    type Config: ServiceConfig;

    /// Reads its configuration: defaults < `SOUK_CONFIG` file < `SOUK_<NAME>__*` variables.
    fn load(env: &Env) -> Result<Self::Config, ConfigError> {
        crate::config::load(Self::NAME, env.config_file().as_deref(), env)
    }

    /// Opens its stores, starts its background work on `wiring`'s shutdown, and builds its
    /// router, reaching its neighbours through `wiring`.
    fn start(
        config: Self::Config,
        wiring: &Wiring,
    ) -> impl Future<Output = Result<Running, StartError>> + Send;

    /// What prints its OpenAPI document, as JSON, if it serves an API (the storefront serves
    /// pages).
    const OPENAPI: Option<fn() -> String> = None;
}

/// What the skeleton reads from every service's configuration.
pub trait ServiceConfig:
    serde::Serialize + serde::de::DeserializeOwned + Default + Send + Sync + 'static
{
    /// The address it listens on when it is its own process.
    fn listen(&self) -> SocketAddr;
    /// Its HTTP settings (timeouts, the drain deadline).
    fn http(&self) -> &HttpConfig;
}

/// Implements [`ServiceConfig`] for a configuration struct with the usual `listen: SocketAddr`
/// and `http: HttpConfig` fields.
#[macro_export]
macro_rules! service_config {
    ($config:ty) => {
        impl $crate::service::ServiceConfig for $config {
            fn listen(&self) -> ::std::net::SocketAddr {
                self.listen
            }

            fn http(&self) -> &$crate::HttpConfig {
                &self.http
            }
        }
    };
}

/// Why a service could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Configuration was read but makes no sense.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The service's own start-up failed (its keys, its demo data, …): the service's error.
    #[error(transparent)]
    Setup(Box<dyn std::error::Error + Send + Sync>),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
}

impl StartError {
    /// A failure of the service's own start-up.
    pub fn setup(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Setup(Box::new(err))
    }

    /// The service's own error, if this is one of type `E`.
    pub fn setup_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Setup(err) => err.downcast_ref(),
            _ => None,
        }
    }
}

/// A started service: what it serves, its health, the background work that ends at the wiring's
/// shutdown, and the databases to close once it has.
#[derive(Debug)]
pub struct Running {
    /// Everything it serves: API, feeds, health, metrics, with the standard stack.
    pub router: Router,
    /// Its health, which starts draining when the wiring's shutdown fires.
    pub health: Health,
    background: Vec<JoinHandle<()>>,
    databases: Vec<Database>,
}

impl Running {
    /// A service serving `router`, healthy as `health` says.
    pub fn new(router: Router, health: Health) -> Self {
        Self {
            router,
            health,
            background: Vec::new(),
            databases: Vec::new(),
        }
    }

    /// This service, whose stop waits (within the drain deadline) for `task`: a consumer or
    /// relay that finishes the work in hand once the wiring's shutdown fires.
    pub fn waiting_for(mut self, task: JoinHandle<()>) -> Self {
        self.background.push(task);
        self
    }

    /// This service, which closes `database` once it has stopped serving.
    pub fn closing(mut self, database: Database) -> Self {
        self.databases.push(database);
        self
    }

    /// Serves on `listener` until `shutdown`, then lets in-flight requests and background work
    /// finish and closes the databases, all within the drain deadline counted from the moment
    /// shutdown fired: a container's stop grace period is sized on it.
    pub async fn serve(
        self,
        name: &str,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> Result<(), StartError> {
        let addr = listener.local_addr().map_err(StartError::Serve)?;
        let engine = self.databases.first().map_or("none", Database::engine);
        tracing::info!(%addr, engine, "{name} listening");
        let router = self.router.clone();
        crate::serve(listener, router, shutdown.clone())
            .await
            .map_err(StartError::Serve)?;
        let deadline = shutdown.stop_by();
        self.stop(deadline).await;
        Ok(())
    }

    /// Once the wiring's shutdown has fired: waits until `deadline` for the background work to
    /// finish what it has in hand, then closes the databases, given what is left of the deadline
    /// but at least [`CLOSE_AT_LEAST`]. A database that does not close by then (a backend gone,
    /// a connection stuck on it) is left to the process' exit: a pool's close waits for every
    /// connection to come back, which a dead PostgreSQL can make forever.
    pub async fn stop(self, deadline: Instant) {
        let background = futures::future::join_all(self.background);
        if tokio::time::timeout_at(deadline.into(), background)
            .await
            .is_err()
        {
            tracing::warn!("background work did not stop within the drain deadline");
        }
        let close = futures::future::join_all(self.databases.iter().map(Database::close));
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(CLOSE_AT_LEAST);
        if tokio::time::timeout(left, close).await.is_err() {
            tracing::warn!(
                waited_ms = left.as_millis(),
                "the databases did not close in time; leaving them to the exit"
            );
        }
    }
}

/// The least time a stopping service gives its databases to close, even past the drain deadline:
/// enough for SQLite's last checkpoint and PostgreSQL's goodbyes.
const CLOSE_AT_LEAST: Duration = Duration::from_secs(1);

/// How a service reaches its neighbours, and the shutdown its background work stops on.
#[derive(Debug, Clone)]
pub struct Wiring {
    shutdown: Shutdown,
    local: Option<Local>,
}

impl Wiring {
    /// A service in its own process: neighbours over HTTP at the URLs its configuration names.
    pub fn network(shutdown: Shutdown) -> Self {
        Self {
            shutdown,
            local: None,
        }
    }

    /// A service in one process with its neighbours: each is its router in `local`.
    pub fn local(shutdown: Shutdown, local: Local) -> Self {
        Self {
            shutdown,
            local: Some(local),
        }
    }

    /// When the service stops: its relays flush, its loops end, its health drains.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// A client of the neighbour `name`, configured (URL, timeout) by `config`.
    pub fn client(&self, name: &str, config: &ClientConfig) -> ServiceClient {
        match &self.local {
            Some(local) => ServiceClient::late(name, local.slot(name), config.timeout()),
            None => ServiceClient::http(name, config),
        }
    }
}

/// The routers of the services that share one process, by name, each bound once when its
/// service has started. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Local {
    slots: Arc<Mutex<BTreeMap<String, Arc<OnceLock<Router>>>>>,
}

impl Local {
    /// No service yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `name` to `router`: clients made before and after now reach it. A second binding
    /// of the same name is refused (the first stays).
    pub fn provide(&self, name: &str, router: Router) -> Result<(), Router> {
        self.slot(name).set(router)
    }

    /// The router bound to `name`, if its service has started.
    pub fn router(&self, name: &str) -> Option<Router> {
        self.slot(name).get().cloned()
    }

    fn slot(&self, name: &str) -> Arc<OnceLock<Router>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(name.to_owned()).or_default())
    }
}

/// Starts `S` on `wiring` without serving it: its health drains when the wiring's shutdown fires.
pub async fn launch<S: Service>(config: S::Config, wiring: &Wiring) -> Result<Running, StartError> {
    let running = S::start(config, wiring).await?;
    running.health.drain_on(wiring.shutdown());
    Ok(running)
}

/// Runs `S` as its own process: reads its configuration from `env`, binds its address, starts
/// it with its neighbours over the network, and serves until SIGTERM or Ctrl-C.
pub async fn serve<S: Service>(env: &Env) -> Result<(), StartError> {
    let config = S::load(env)?;
    let addr = config.listen();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let shutdown = Shutdown::on_os_signals(config.http().drain_timeout());
    let running = launch::<S>(config, &Wiring::network(shutdown.clone())).await?;
    running.serve(S::NAME, listener, shutdown).await
}

/// A service binary's `main`: `<binary> openapi` prints the OpenAPI document; otherwise it
/// serves ([`serve`]) with telemetry, and a failure is a message and exit code 1.
pub fn main<S: Service>() -> ExitCode {
    crate::tune_allocator();
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        let Some(document) = S::OPENAPI.map(|print| print()) else {
            eprintln!(
                "souk-{}: serves no API, so has no OpenAPI document",
                S::NAME
            );
            return ExitCode::FAILURE;
        };
        print!("{document}");
        return ExitCode::SUCCESS;
    }
    crate::server::run_main(S::NAME, |env| async move { serve::<S>(&env).await })
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    #[tokio::test]
    async fn a_local_neighbour_is_unavailable_until_it_starts_then_reached() {
        let local = Local::new();
        let (_trigger, shutdown) = Shutdown::manual(Duration::from_secs(1));
        let wiring = Wiring::local(shutdown, local.clone());
        let client = wiring.client("neighbour", &ClientConfig::default());
        let early = client.get::<u32>("/n", None).await;
        assert!(early.is_err_and(|e| e.is_unavailable()), "before it starts");

        let router = Router::new().route("/n", get(|| async { "7" }));
        assert!(local.provide("neighbour", router.clone()).is_ok());
        assert!(local.provide("neighbour", router).is_err(), "bound once");
        assert_eq!(client.get::<u32>("/n", None).await.ok(), Some(7));
        assert!(local.router("neighbour").is_some());
        assert!(local.router("stranger").is_none());
    }

    #[tokio::test]
    async fn a_stop_ends_by_its_deadline_when_work_or_a_database_will_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("stop.db").display());
        let database = Database::connect(&crate::DatabaseConfig::with_url(url))
            .await
            .unwrap();
        // A connection that is never given back: the pool's close waits for it, as it waits
        // for one stuck on a PostgreSQL server that is gone.
        let Database::Sqlite(pool) = &database else {
            unreachable!("a sqlite url")
        };
        let held = pool.acquire().await.unwrap();
        let running = Running::new(Router::new(), Health::new())
            .waiting_for(tokio::spawn(futures::future::pending()))
            .closing(database);
        let started = Instant::now();
        running
            .stop(Instant::now() + Duration::from_millis(200))
            .await;
        let took = started.elapsed();
        assert!(
            took >= CLOSE_AT_LEAST,
            "the close had its least time: {took:?}"
        );
        assert!(took < Duration::from_secs(5), "bounded: {took:?}");
        drop(held);
    }

    #[test]
    fn a_setup_error_is_found_again_by_its_type() {
        let err = StartError::setup(std::io::Error::other("no keys"));
        assert!(err.setup_error::<std::io::Error>().is_some());
        assert!(err.setup_error::<std::fmt::Error>().is_none());
        assert_eq!(err.to_string(), "no keys");
    }
}
