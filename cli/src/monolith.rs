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
use crate::services::{Facts, Service};
use crate::state::{self, State};
use crate::up::{self, Backend, Options};
use souk_chassis::problem::ErrorChain;
use souk_chassis::service::{Local, Wiring};

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
    // The gateway in this process receives the spans of every service in it (over loopback,
    // as from `souk up`'s processes), so its port is chosen before anything makes a span.
    let otlp = match options.traces {
        true => Some(SocketAddr::from(([127, 0, 0, 1], up::free_port()?))),
        false => None,
    };
    let mut telemetry =
        souk_chassis::telemetry::TelemetryConfig::from_env("monolith", &Env::from_process());
    telemetry.endpoint = otlp.map(|otlp| format!("http://{otlp}"));
    let _telemetry = souk_chassis::telemetry::init(&telemetry).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::on_os_signals(Duration::from_secs(10));
    let databases = up::databases(&options).await?;
    let cart_events = up::cart_events_database(&options).await?;
    let secrets = up::service_secrets()?;
    let data_dir = std::fs::canonicalize(&options.data_dir).map_err(|e| e.to_string())?;
    let facts = Facts {
        gateway: listen,
        data_dir: &data_dir,
        databases: &databases,
        secrets: &secrets,
        // Neighbours are called on their routers in this process, never at an address.
        internal: &BTreeMap::new(),
        csrf_secret: &up::random_hex()?,
        storefront_ip,
        cart_events: &cart_events,
        cart_key_prefix: up::cart_key_prefix(&options),
    };
    // Each service reads the configuration `souk up` would give its process (the same pairs,
    // over this process's environment) and calls its neighbours' routers here: bound as each
    // starts, so a call to one not started yet fails as unavailable and is retried.
    let local = Local::new();
    let wiring = Wiring::local(shutdown.clone(), local.clone());
    let process_env = Env::from_process();
    let mut running = Vec::new();
    for service in Service::ALL {
        let env = process_env.clone().with(service.pairs(&facts));
        let started = service
            .launch(env, wiring.clone())
            .await
            .map_err(|e| format!("{}: {}", service.name(), ErrorChain(&e)))?;
        if local
            .provide(service.name(), started.router.clone())
            .is_err()
        {
            return Err(format!("{} is in the registry twice", service.name()));
        }
        running.push(started);
    }
    let routers: souk_gateway::InProcess = Service::ALL
        .iter()
        .filter_map(|s| Some((s.name().to_owned(), local.router(s.name())?)))
        .collect();
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
        otlp,
    };
    // The endpoints are never dialled: each upstream is served by its router in this process.
    // The storefront's stands for the address it calls the gateway from (over loopback HTTP,
    // like any client), which the gateway then believes `X-Forwarded-For` from.
    let endpoints: BTreeMap<Service, Vec<SocketAddr>> = Service::ALL
        .iter()
        .map(|s| {
            let ip = match *s == Service::STOREFRONT {
                true => storefront_ip,
                false => std::net::IpAddr::from([127, 0, 0, 1]),
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
    let gateway = souk_gateway::start_with(config, None, shutdown.clone(), routers)
        .map_err(|e| e.to_string())?;
    let state = State {
        pid: std::process::id(),
        control: None,
        gateway: gateway.addr,
        admin: gateway.admin_addr,
        metrics: gateway.metrics_addr,
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
    println!("  shop:          http://{}/", gateway.addr);
    println!("  shop API:      http://{}/api/v1/products", gateway.addr);
    println!("  OpenAPI:       http://{}/api/openapi.json", gateway.addr);
    println!("  service map:   http://{}/map", listeners.metrics);
    if otlp.is_some() {
        println!(
            "  traces:        http://{}/waterfall (`souk trace <id>` in a terminal)",
            listeners.metrics
        );
    }
    println!(
        "  gateway admin: http://{}/upstreams (Authorization: Bearer $(cat {}))",
        gateway.admin_addr,
        state::token_path(&options.data_dir).display()
    );
    println!("  data:          {}", options.data_dir.display());
    println!();
    println!("  Ctrl-C stops the shop.");
    println!();

    shutdown.wait().await;
    // One deadline from the signal on: the gateway's drain, the services' work, their databases.
    let deadline = shutdown.stop_by();
    println!("souk: stopping…");
    let _ = tokio::task::spawn_blocking(move || gateway.join()).await;
    // Every service's consumers finish what they have in hand at once, within one deadline.
    let stops = running.into_iter().map(|service| service.stop(deadline));
    futures::future::join_all(stops).await;
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
        traces: true,
    }
}
