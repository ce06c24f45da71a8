//! `souk monolith`: the same services and gateway routes in ONE process. The gateway calls each
//! service's router in-process (tower `oneshot`) instead of over a socket; the public API and the
//! data layout are those of `souk up`, so the same end-to-end tests pass against both topologies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use souk_chassis::client::ServiceClient;
use souk_chassis::{Env, Shutdown};

use crate::services::Service;
use crate::state::{self, State};
use crate::up::{self, Backend, Options};

/// Runs the shop as one process until Ctrl-C or SIGTERM.
pub(crate) fn run(options: Options) -> std::process::ExitCode {
    up::run_to_end("souk monolith", monolith(options))
}

async fn monolith(options: Options) -> Result<(), String> {
    let started = Instant::now();
    let listen = up::preflight(&options)?;
    let _telemetry = souk_chassis::telemetry::init(
        &souk_chassis::telemetry::TelemetryConfig::from_env("monolith", &Env::from_process()),
    )
    .map_err(|e| e.to_string())?;
    let shutdown = Shutdown::on_os_signals(Duration::from_secs(10));
    let databases = up::databases(&options).await?;
    let env = Env::from_process();
    let mut routers = souk_gateway::InProcess::new();
    // In start order, so a service's neighbours are built before it and it calls their routers.
    for service in Service::ALL {
        let url = databases.get(&service).cloned().unwrap_or_default();
        let context = Context {
            env: &env,
            listen,
            built: &routers,
            shutdown: &shutdown,
            options: &options,
        };
        let router = build(service, url, &context).await?;
        routers.insert(service.name().to_owned(), router);
    }

    let admin = SocketAddr::from(([127, 0, 0, 1], up::free_port()?));
    // The endpoints are never dialled: each upstream is served by its router in this process.
    let placeholder = SocketAddr::from(([127, 0, 0, 1], 9));
    let endpoints: BTreeMap<Service, Vec<SocketAddr>> = Service::ALL
        .iter()
        .map(|s| (*s, vec![placeholder]))
        .collect();
    let text = up::gateway::config(listen, admin, &endpoints, !options.quiet);
    let config = souk_gateway::GatewayConfig::parse(&text)
        .map_err(|e| format!("generated gateway config is invalid: {e}"))?;
    let running = souk_gateway::start_with(config, None, shutdown.clone(), routers)
        .map_err(|e| e.to_string())?;
    let state = State {
        pid: std::process::id(),
        control: None,
        gateway: running.addr,
        admin: running.admin_addr,
    };
    state
        .write(&options.data_dir)
        .map_err(|e| format!("cannot write the state file: {e}"))?;

    println!();
    println!(
        "souk monolith is up in {} ms: every service and the gateway in process {}",
        started.elapsed().as_millis(),
        std::process::id()
    );
    println!();
    println!("  shop API:      http://{}/api/v1/products", running.addr);
    println!("  OpenAPI:       http://{}/api/openapi.json", running.addr);
    println!("  gateway admin: http://{}/upstreams", running.admin_addr);
    println!("  data:          {}", options.data_dir.display());
    println!();
    println!("  Ctrl-C stops the shop.");
    println!();

    shutdown.wait().await;
    println!("souk: stopping…");
    let _ = tokio::task::spawn_blocking(move || running.join()).await;
    let _ = std::fs::remove_file(state::path(&options.data_dir));
    println!("souk: stopped");
    Ok(())
}

/// What every service of the monolith is built with.
struct Context<'a> {
    env: &'a Env,
    /// The gateway's address (where the JWKS is).
    listen: SocketAddr,
    /// The routers built so far: the neighbours a service calls.
    built: &'a souk_gateway::InProcess,
    shutdown: &'a Shutdown,
    options: &'a Options,
}

/// Builds `service`'s router on `database`, as its own process would, calling its neighbours'
/// routers in this process.
async fn build(
    service: Service,
    database: String,
    context: &Context<'_>,
) -> Result<axum::Router, String> {
    let Context {
        env,
        listen,
        shutdown,
        ..
    } = *context;
    let jwks_url = format!("http://{listen}/.well-known/jwks.json");
    let neighbour = |name: &str, config: &souk_chassis::client::ClientConfig| {
        context
            .built
            .get(name)
            .cloned()
            .map(|router| ServiceClient::in_process(name, router, config.timeout()))
            .ok_or_else(|| format!("{} is built before {name}", service.name()))
    };
    match service {
        Service::Identity => {
            let mut config = souk_identity::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            let identity = souk_identity::build(config, souk_identity::AdminAccount::from_env(env))
                .await
                .map_err(|e| format!("identity: {}", souk_chassis::problem::ErrorChain(&e)))?;
            identity.health.drain_on(shutdown);
            Ok(identity.router)
        }
        Service::Catalog => {
            let mut config = souk_catalog::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            config.auth.jwks_url = jwks_url;
            let catalog = souk_catalog::build(&config)
                .await
                .map_err(|e| format!("catalog: {}", souk_chassis::problem::ErrorChain(&e)))?;
            catalog.health.drain_on(shutdown);
            Ok(catalog.router)
        }
        Service::Inventory => {
            let mut config = souk_inventory::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            config.auth.jwks_url = jwks_url;
            let catalog = neighbour("catalog", &config.catalog)?;
            let inventory = souk_inventory::build_with(&config, catalog)
                .await
                .map_err(|e| format!("inventory: {}", souk_chassis::problem::ErrorChain(&e)))?;
            inventory.health.drain_on(shutdown);
            Ok(inventory.router)
        }
        Service::Payments => {
            let mut config = souk_payments::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            config.auth.jwks_url = jwks_url;
            let payments = souk_payments::build(&config)
                .await
                .map_err(|e| format!("payments: {}", souk_chassis::problem::ErrorChain(&e)))?;
            payments.health.drain_on(shutdown);
            Ok(payments.router)
        }
        Service::Cart => {
            let mut config = souk_cart::load_config(env).map_err(|e| e.to_string())?;
            config.store.url = souk_chassis::Secret::new(database);
            if let Some(prefix) = up::cart_key_prefix(context.options) {
                config.store.key_prefix = prefix;
            }
            config.auth.jwks_url = jwks_url;
            let catalog = neighbour("catalog", &config.catalog)?;
            let cart = souk_cart::build_with(&config, catalog)
                .await
                .map_err(|e| format!("cart: {}", souk_chassis::problem::ErrorChain(&e)))?;
            cart.health.drain_on(shutdown);
            Ok(cart.router)
        }
    }
}

/// The backend `souk monolith` runs on (the same choice as `souk up`).
pub(crate) fn options(
    data_dir: std::path::PathBuf,
    port: u16,
    backend: Backend,
    quiet: bool,
) -> Options {
    Options {
        data_dir,
        port,
        instances: Vec::new(),
        backend,
        quiet,
    }
}
