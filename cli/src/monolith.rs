//! `souk monolith`: the same services and gateway routes in ONE process. The gateway calls each
//! service's router in-process (tower `oneshot`) instead of over a socket; the public API and the
//! data layout are those of `souk up`, so the same end-to-end tests pass against both topologies.
//! As with `souk up`, the gateway opens the shop's port only once every service is ready.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use souk_chassis::client::ServiceClient;
use souk_chassis::{Env, Shutdown};

use crate::gateway_config;
use crate::services::Service;
use crate::state::{self, State};
use crate::up::{self, Backend, Options};

/// Runs the shop as one process until Ctrl-C or SIGTERM.
pub(crate) fn run(options: Options) -> std::process::ExitCode {
    reexec_with_argon2_friendly_malloc();
    up::run_to_end("souk monolith", monolith(options))
}

/// Identity hashes passwords in this process, so it needs the malloc setting `souk up` gives its
/// identity processes ([`up::ARGON2_FRIENDLY_MALLOC`]). glibc reads it only when a program
/// starts: run this same command again, once, with it set. Should that fail, go on without it.
fn reexec_with_argon2_friendly_malloc() {
    use std::os::unix::process::CommandExt;
    let (name, value) = up::ARGON2_FRIENDLY_MALLOC;
    if std::env::var_os(name).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(name, value)
        .exec();
    eprintln!("souk monolith: cannot restart with {name}={value} ({err}); going on without it");
}

async fn monolith(options: Options) -> Result<(), String> {
    let started = Instant::now();
    up::private_umask();
    let listen = up::preflight(&options)?;
    let storefront_ip = up::storefront_ip();
    let _telemetry = souk_chassis::telemetry::init(
        &souk_chassis::telemetry::TelemetryConfig::from_env("monolith", &Env::from_process()),
    )
    .map_err(|e| e.to_string())?;
    let shutdown = Shutdown::on_os_signals(Duration::from_secs(10));
    let databases = up::databases(&options).await?;
    let cart_events = up::cart_events_database(&options).await?;
    let secrets = up::service_secrets()?;
    let env = Env::from_process();
    let mut routers = souk_gateway::InProcess::new();
    let mut consumers = Vec::new();
    // In start order, so a service's neighbours are built before it and it calls their routers.
    for service in Service::ALL {
        let url = databases.get(&service).cloned().unwrap_or_default();
        let context = Context {
            env: &env,
            listen,
            built: &routers,
            shutdown: &shutdown,
            options: &options,
            secrets: &secrets,
            cart_events: &cart_events,
            storefront_ip,
        };
        let built = build(service, url, &context).await?;
        routers.insert(service.name().to_owned(), built.router);
        consumers.extend(built.consumer);
    }
    // Consumers read producers built after them (orders calls inventory, whose consumer reads
    // orders' events): they start once every router exists.
    for consumer in consumers {
        consumer.start(&routers, &shutdown).await?;
    }
    // The gateway opens the shop's port only once the shop can take and confirm an order.
    tokio::select! {
        ready = wait_ready(&routers) => ready?,
        () = shutdown.wait() => return Err("interrupted while starting".to_owned()),
    }

    let admin_token = up::new_admin_token(&options.data_dir)?;
    let data_dir = std::fs::canonicalize(&options.data_dir).map_err(|e| e.to_string())?;
    let listeners = gateway_config::Listeners {
        listen,
        admin: SocketAddr::from(([127, 0, 0, 1], up::free_port()?)),
        metrics: SocketAddr::from(([127, 0, 0, 1], up::free_port()?)),
        token_file: state::token_path(&data_dir).display().to_string(),
    };
    // The endpoints are never dialled: each upstream is served by its router in this process.
    // The storefront's stands for the address it calls the gateway from (over loopback HTTP,
    // like any client), which the gateway then believes `X-Forwarded-For` from.
    let endpoints: BTreeMap<Service, Vec<SocketAddr>> = Service::ALL
        .iter()
        .map(|s| {
            let ip = match s {
                Service::Storefront => storefront_ip,
                _ => std::net::IpAddr::from([127, 0, 0, 1]),
            };
            (*s, vec![SocketAddr::new(ip, 9)])
        })
        .collect();
    // The typed configuration, used as it is: checked like a file would be, never written.
    let mut config = gateway_config::for_run(
        &listeners,
        &endpoints,
        &gateway_config::Tuning::of(&options),
    );
    config
        .validate()
        .map_err(|e| format!("the gateway configuration is invalid: {e}"))?;
    config.server.admin_token = souk_chassis::Secret::new(admin_token);
    let running = souk_gateway::start_with(config, None, shutdown.clone(), routers)
        .map_err(|e| e.to_string())?;
    let state = State {
        pid: std::process::id(),
        control: None,
        gateway: running.addr,
        admin: running.admin_addr,
        metrics: running.metrics_addr,
        token: String::new(),
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
    println!("  shop:          http://{}/", running.addr);
    println!("  shop API:      http://{}/api/v1/products", running.addr);
    println!("  OpenAPI:       http://{}/api/openapi.json", running.addr);
    println!("  service map:   http://{}/map", listeners.metrics);
    println!(
        "  gateway admin: http://{}/upstreams (Authorization: Bearer $(cat {}))",
        running.admin_addr,
        state::token_path(&options.data_dir).display()
    );
    println!("  data:          {}", options.data_dir.display());
    println!();
    println!("  Ctrl-C stops the shop.");
    println!();

    shutdown.wait().await;
    println!("souk: stopping…");
    let _ = tokio::task::spawn_blocking(move || running.join()).await;
    let _ = std::fs::remove_file(state::path(&options.data_dir));
    let _ = std::fs::remove_file(state::token_path(&options.data_dir));
    println!("souk: stopped");
    Ok(())
}

/// Waits until every service's `/readyz` answers 200, in start order, as `souk up` does for its
/// processes: inventory's only once it has read the catalog's products.
async fn wait_ready(routers: &souk_gateway::InProcess) -> Result<(), String> {
    let deadline = Instant::now() + up::READY_DEADLINE;
    for service in Service::ALL {
        let Some(router) = routers.get(service.name()).cloned() else {
            continue;
        };
        let client = ServiceClient::in_process(service.name(), router, Duration::from_secs(2));
        loop {
            match client.get::<serde_json::Value>("/readyz", None).await {
                Ok(_) => break,
                Err(err) if Instant::now() >= deadline => {
                    return Err(format!(
                        "{} did not become ready within {} s: {err}",
                        service.name(),
                        up::READY_DEADLINE.as_secs()
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
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
    /// Each calling service's secret at identity.
    secrets: &'a BTreeMap<Service, String>,
    /// Where the cart keeps its event bookkeeping.
    cart_events: &'a str,
    /// The storefront's own loopback address, which it calls the gateway from.
    storefront_ip: std::net::IpAddr,
}

/// A service built, and the event consumer it runs once its producers exist.
struct Built {
    router: axum::Router,
    consumer: Option<Consumer>,
}

impl From<axum::Router> for Built {
    fn from(router: axum::Router) -> Self {
        Self {
            router,
            consumer: None,
        }
    }
}

/// An event consumer to start when every router exists.
enum Consumer {
    Inventory(Box<souk_inventory::Inventory>, Box<souk_inventory::Config>),
    Cart(Box<souk_cart::Cart>, Box<souk_cart::Config>),
}

impl Consumer {
    /// Starts it on the in-process producers (orders; and for inventory the catalog) and
    /// identity (its tokens).
    async fn start(
        self,
        routers: &souk_gateway::InProcess,
        shutdown: &Shutdown,
    ) -> Result<(), String> {
        let client = |name: &str| {
            routers
                .get(name)
                .cloned()
                .map(|router| ServiceClient::in_process(name, router, Duration::from_secs(30)))
                .ok_or_else(|| format!("{name} was not built"))
        };
        let (orders, identity) = (client("orders")?, client("identity")?);
        match self {
            Self::Inventory(inventory, config) => {
                inventory.consume_order_events(&config, orders, identity.clone(), shutdown.clone());
                // The catalog's router, which inventory was built with, serves the product events.
                inventory.consume_catalog_events(&config, identity, shutdown.clone());
            }
            Self::Cart(cart, config) => {
                cart.consume_order_events(&config, orders, identity, shutdown.clone())
                    .await
                    .map_err(|e| format!("cart: {}", souk_chassis::problem::ErrorChain(&e)))?;
            }
        }
        Ok(())
    }
}

/// Builds `service`'s router on `database`, as its own process would, calling its neighbours'
/// routers in this process.
async fn build(service: Service, database: String, context: &Context<'_>) -> Result<Built, String> {
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
    let secret = |service: Service| {
        context
            .secrets
            .get(&service)
            .map(|s| souk_chassis::Secret::new(s.clone()))
            .ok_or_else(|| format!("no service secret for {}", service.name()))
    };
    match service {
        Service::Identity => {
            let mut config = souk_identity::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            for (caller, secret) in context.secrets {
                let client = souk_identity::config::ServiceClient {
                    secret: souk_chassis::Secret::new(secret.clone()),
                    audiences: caller
                        .token_audiences()
                        .iter()
                        .map(|a| (*a).to_owned())
                        .collect(),
                    feeds: caller
                        .feed_audiences()
                        .iter()
                        .map(|a| (*a).to_owned())
                        .collect(),
                };
                config.services.insert(caller.name().to_owned(), client);
            }
            // The secret that seals its signing keys, beside (not in) its database.
            let dir =
                std::fs::canonicalize(&context.options.data_dir).map_err(|e| e.to_string())?;
            config.key_file = dir.join("identity.key").display().to_string();
            let identity = souk_identity::build(config, souk_identity::AdminAccount::from_env(env))
                .await
                .map_err(|e| format!("identity: {}", souk_chassis::problem::ErrorChain(&e)))?;
            identity.health.drain_on(shutdown);
            Ok(identity.router.into())
        }
        Service::Catalog => {
            let mut config = souk_catalog::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            config.auth.jwks_url = jwks_url;
            let catalog = souk_catalog::build(&config)
                .await
                .map_err(|e| format!("catalog: {}", souk_chassis::problem::ErrorChain(&e)))?;
            catalog.spawn_relay(shutdown);
            catalog.health.drain_on(shutdown);
            Ok(catalog.router.into())
        }
        Service::Inventory => {
            let mut config = souk_inventory::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            config.auth.jwks_url = jwks_url;
            config.service_token.client_secret = secret(Service::Inventory)?;
            let catalog = neighbour("catalog", &config.catalog)?;
            let inventory = souk_inventory::build_with(&config, catalog)
                .await
                .map_err(|e| format!("inventory: {}", souk_chassis::problem::ErrorChain(&e)))?;
            inventory.health.drain_on(shutdown);
            Ok(Built {
                router: inventory.router.clone(),
                consumer: Some(Consumer::Inventory(Box::new(inventory), Box::new(config))),
            })
        }
        Service::Payments => {
            let mut config = souk_payments::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            config.auth.jwks_url = jwks_url;
            // The secret that seals the simulated vault, beside (not in) its database.
            let dir =
                std::fs::canonicalize(&context.options.data_dir).map_err(|e| e.to_string())?;
            config.processor.vault_key_file = dir.join("payments-vault.key").display().to_string();
            let payments = souk_payments::build(&config)
                .await
                .map_err(|e| format!("payments: {}", souk_chassis::problem::ErrorChain(&e)))?;
            // Its events leave through NATS only if its relay runs, as orders' does.
            payments.spawn_relay(shutdown);
            payments.health.drain_on(shutdown);
            Ok(payments.router.into())
        }
        Service::Cart => {
            let mut config = souk_cart::load_config(env).map_err(|e| e.to_string())?;
            config.store.url = souk_chassis::Secret::new(database);
            if let Some(prefix) = up::cart_key_prefix(context.options) {
                config.store.key_prefix = prefix;
            }
            config.auth.jwks_url = jwks_url;
            config.events_database = souk_chassis::DatabaseConfig::with_url(context.cart_events);
            config.service_token.client_secret = secret(Service::Cart)?;
            let catalog = neighbour("catalog", &config.catalog)?;
            let cart = souk_cart::build_with(&config, catalog)
                .await
                .map_err(|e| format!("cart: {}", souk_chassis::problem::ErrorChain(&e)))?;
            cart.health.drain_on(shutdown);
            Ok(Built {
                router: cart.router.clone(),
                consumer: Some(Consumer::Cart(Box::new(cart), Box::new(config))),
            })
        }
        Service::Orders => {
            let mut config = souk_orders::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            config.auth.jwks_url = jwks_url;
            config.service_token.client_secret = secret(Service::Orders)?;
            let neighbours = souk_orders::Neighbours {
                cart: neighbour("cart", &config.cart)?,
                catalog: neighbour("catalog", &config.catalog)?,
                inventory: neighbour("inventory", &config.inventory)?,
                payments: neighbour("payments", &config.payments)?,
                identity: neighbour("identity", &config.service_token.identity)?,
            };
            let orders = souk_orders::build_with(&config, neighbours)
                .await
                .map_err(|e| format!("orders: {}", souk_chassis::problem::ErrorChain(&e)))?;
            orders.spawn_relay(shutdown);
            orders.health.drain_on(shutdown);
            Ok(orders.router.into())
        }
        Service::History => {
            let mut config = souk_history::load_config(env).map_err(|e| e.to_string())?;
            config.database = souk_chassis::DatabaseConfig::with_url(database);
            config.auth.jwks_url = jwks_url;
            config.service_token.client_secret = secret(Service::History)?;
            let producers = souk_history::Producers {
                orders: neighbour("orders", &config.orders)?,
                payments: neighbour("payments", &config.payments)?,
                identity: neighbour("identity", &config.service_token.identity)?,
            };
            let history = souk_history::build_with(&config, producers, shutdown)
                .await
                .map_err(|e| format!("history: {}", souk_chassis::problem::ErrorChain(&e)))?;
            history.health.drain_on(shutdown);
            Ok(history.router.into())
        }
        Service::Storefront => {
            // A client of the public API like any other: over loopback HTTP to the gateway,
            // which calls the services' routers in this process.
            let mut config = souk_storefront::load_config(env).map_err(|e| e.to_string())?;
            config.gateway.url = format!("http://{listen}");
            config.source_ip = Some(context.storefront_ip);
            let storefront = souk_storefront::build(&config)
                .map_err(|e| format!("storefront: {}", souk_chassis::problem::ErrorChain(&e)))?;
            storefront.health.drain_on(shutdown);
            Ok(storefront.router.into())
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
        rate_limit_factor: 1,
    }
}
