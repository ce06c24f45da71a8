//! Threads and listeners: one proxy thread per core, each with its own single-threaded runtime,
//! its own listening socket on the shared port (`SO_REUSEPORT`, so the kernel spreads
//! connections) and its own upstream connection pools; plus one admin thread for the admin API,
//! health checks, DNS and SIGHUP. No request ever crosses threads, and no pool is shared.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use souk_chassis::{Health, Shutdown};
use tokio::net::TcpListener;

use crate::admin::{self, Admin};
use crate::clock::Clock;
use crate::config::{GatewayConfig, ms};
use crate::connections::Caps;
use crate::proxy::{Proxy, Shared};
use crate::table::Table;
use crate::upstream::InProcess;
use souk_chassis::linger::{Linger, Lingering};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A thread or runtime could not start.
    #[error("cannot start the gateway's threads: {0}")]
    Thread(std::io::Error),
    /// The admin token file could not be read, or is empty.
    #[error("server.admin_token_file {path}: {reason}")]
    AdminToken {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    /// The public listener's address.
    pub addr: SocketAddr,
    /// The admin listener's address.
    pub admin_addr: SocketAddr,
    /// The read-only metrics and map listener's address, when configured.
    pub metrics_addr: Option<SocketAddr>,
    /// The OTLP/HTTP trace receiver's address, when `[traces]` is configured.
    pub otlp_addr: Option<SocketAddr>,
    /// State shared by every thread (routing table, upstreams).
    pub shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Waits until every thread has stopped (after shutdown and drain).
    pub fn join(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a gateway thread panicked");
            }
        }
    }
}

/// Binds the listeners and starts the threads. Returns once both listeners accept connections.
pub fn start(
    config: GatewayConfig,
    config_path: Option<PathBuf>,
    shutdown: Shutdown,
) -> Result<Running, StartError> {
    start_with(config, config_path, shutdown, InProcess::new())
}

/// Like [`start`], with some upstreams served by routers in this process (`souk monolith`).
pub fn start_with(
    config: GatewayConfig,
    config_path: Option<PathBuf>,
    shutdown: Shutdown,
    in_process: InProcess,
) -> Result<Running, StartError> {
    souk_chassis::metrics::handle();
    let threads = match config.server.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let listeners = bind_shared_port(config.server.listen, threads)?;
    let addr = listeners[0]
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
    let admin_listener = std::net::TcpListener::bind(config.server.admin_listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| StartError::Bind {
            addr: config.server.admin_listen,
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.server.admin_listen,
            source,
        })?;
    let metrics_listener = config
        .server
        .metrics_listen
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| StartError::Bind { addr, source })
        })
        .transpose()?;
    let metrics_addr = metrics_listener
        .as_ref()
        .map(|l| {
            l.local_addr().map_err(|source| StartError::Bind {
                addr: admin_addr,
                source,
            })
        })
        .transpose()?;
    let otlp = config
        .traces
        .as_ref()
        .map(|traces| {
            let addr = traces.otlp_listen;
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(|l| l.local_addr().map(|bound| (l, bound)))
                .map_err(|source| StartError::Bind { addr, source })?;
            let store = Arc::new(crate::traces::TraceStore::new(crate::traces::Limits {
                max_spans: traces.max_spans,
                max_bytes: traces.max_bytes,
            }));
            Ok::<_, StartError>((listener, store))
        })
        .transpose()?;
    let otlp_addr = otlp.as_ref().map(|((_, bound), _)| *bound);
    let token = admin_token(&config)?;
    if token.is_none() {
        tracing::warn!(
            "no admin token (server.admin_token_file or SOUK_GATEWAY_ADMIN_TOKEN): the admin API refuses every call"
        );
    }
    let hosts = Arc::new(config.server.admin_hosts.clone());

    let clock = Clock::real();
    let drain = ms(config.server.drain_timeout_ms);
    let linger = Linger {
        time: ms(config.server.linger_ms),
        bytes: config.server.linger_bytes,
    };
    let shared = Arc::new(Shared {
        access_log: config.server.access_log,
        table: ArcSwap::from_pointee(Table::build(config, None, &clock)),
        clock,
        in_process,
        connections: Arc::default(),
    });
    let mut handles = Vec::with_capacity(threads + 1);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (shared, shutdown) = (Arc::clone(&shared), shutdown.clone());
        let handle = std::thread::Builder::new()
            .name(format!("gateway-{i}"))
            .spawn(move || on_own_runtime(proxy_thread(listener, shared, shutdown, drain, linger)))
            .map_err(StartError::Thread)?;
        handles.push(handle);
    }
    let (otlp, traces) = otlp.map(|((listener, _), store)| (listener, store)).unzip();
    let admin = Admin {
        shared: Arc::clone(&shared),
        config_path,
        token,
        traces,
    };
    let listeners = AdminListeners {
        admin: admin_listener,
        metrics: metrics_listener,
        otlp,
        hosts,
    };
    let handle = std::thread::Builder::new()
        .name("gateway-admin".into())
        .spawn(move || on_own_runtime(admin_thread(listeners, admin, shutdown)))
        .map_err(StartError::Thread)?;
    handles.push(handle);
    tracing::info!(%addr, %admin_addr, ?metrics_addr, ?otlp_addr, threads, "gateway listening");
    Ok(Running {
        addr,
        admin_addr,
        metrics_addr,
        otlp_addr,
        shared,
        threads: handles,
    })
}

/// The admin token: `SOUK_GATEWAY_ADMIN_TOKEN` (given as `server.admin_token`), else the file.
fn admin_token(config: &GatewayConfig) -> Result<Option<souk_chassis::Secret>, StartError> {
    if !config.server.admin_token.expose().is_empty() {
        return Ok(Some(config.server.admin_token.clone()));
    }
    let Some(path) = &config.server.admin_token_file else {
        return Ok(None);
    };
    let refused = |reason: String| StartError::AdminToken {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| refused(e.to_string()))?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(refused("holds fewer than 16 characters".into()));
    }
    Ok(Some(souk_chassis::Secret::new(token)))
}

/// The admin thread's listeners.
struct AdminListeners {
    admin: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
    otlp: Option<std::net::TcpListener>,
    hosts: Arc<Vec<String>>,
}

fn on_own_runtime(work: impl std::future::Future<Output = ()>) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(err) => tracing::error!(%err, "cannot start a runtime for a gateway thread"),
    }
}

/// `threads` sockets bound to one address with `SO_REUSEPORT`; with port 0, the port the first
/// one got.
fn bind_shared_port(
    addr: SocketAddr,
    threads: usize,
) -> Result<Vec<std::net::TcpListener>, StartError> {
    let mut bound = addr;
    let mut listeners = Vec::with_capacity(threads);
    for _ in 0..threads {
        let listener =
            reuseport_listener(bound).map_err(|source| StartError::Bind { addr, source })?;
        bound = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

async fn proxy_thread(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    drain: Duration,
    linger: Linger,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => return tracing::error!(%err, "cannot register a listener"),
    };
    let proxy = Arc::new(Proxy::new(Arc::clone(&shared)));
    let graceful = GracefulShutdown::new();
    let flusher = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            crate::access_log::flush();
        }
    });
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.wait() => break,
        };
        // Limits come from the configuration in force, so a reload changes them for the
        // connections that follow.
        let table = shared.table.load();
        let server = &table.config.server;
        let caps = Caps {
            total: server.max_connections,
            per_address: server.max_connections_per_address,
        };
        let Some(slot) = shared
            .connections
            .admit(client.ip(), caps, table.trusts(&client.ip()))
        else {
            // Over a cap: a bare 503 into the empty send buffer, and closed. Never waits on a
            // client that does not read.
            let _ = stream.try_write(crate::connections::REFUSAL);
            continue;
        };
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(ms(server.header_timeout_ms))
            .max_buf_size(server.max_header_bytes.max(8192))
            .keep_alive(true);
        drop(table);
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let client_ip = crate::headers::client_ip(&client);
        let service = service_fn(move |request| {
            let (proxy, client_ip) = (Arc::clone(&proxy), client_ip.clone());
            async move { Ok::<_, Infallible>(proxy.handle(request, client, &client_ip).await) }
        });
        let io = TokioIo::new(Lingering::new(stream, linger));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "client connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; closing the remaining client connections");
    }
    flusher.abort();
    crate::access_log::flush();
}

async fn admin_thread(listeners: AdminListeners, admin: Admin, shutdown: Shutdown) {
    let listener = match TcpListener::from_std(listeners.admin) {
        Ok(listener) => listener,
        Err(err) => return tracing::error!(%err, "cannot register the admin listener"),
    };
    let health = Health::new();
    health.drain_on(&shutdown);
    tokio::spawn(crate::checks::run(
        Arc::clone(&admin.shared),
        shutdown.clone(),
    ));
    tokio::spawn(reload_on_sighup(admin.clone(), shutdown.clone()));
    let http = souk_chassis::HttpConfig::default();
    let hosts = listeners.hosts;
    let host_check = move |router: axum::Router| {
        router.layer(axum::middleware::from_fn_with_state(
            Arc::clone(&hosts),
            admin::check_host,
        ))
    };
    if let Some(metrics) = listeners.metrics {
        match TcpListener::from_std(metrics) {
            Ok(metrics) => {
                let router = souk_chassis::http::untraced(souk_chassis::http::service_router(
                    admin::read_only_router(admin.clone()),
                    health.clone(),
                    &http,
                ));
                let (shutdown, router) = (shutdown.clone(), host_check(router));
                tokio::spawn(async move {
                    if let Err(err) = souk_chassis::serve(metrics, router, shutdown).await {
                        tracing::error!(%err, "the metrics listener failed");
                    }
                });
            }
            Err(err) => tracing::error!(%err, "cannot register the metrics listener"),
        }
    }
    if let (Some(otlp), Some(store)) = (listeners.otlp, admin.traces.clone()) {
        match TcpListener::from_std(otlp) {
            Ok(otlp) => {
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let router = crate::traces::otlp::router(store);
                    if let Err(err) = souk_chassis::serve(otlp, router, shutdown).await {
                        tracing::error!(%err, "the trace receiver failed");
                    }
                });
            }
            Err(err) => tracing::error!(%err, "cannot register the trace receiver's listener"),
        }
    }
    let router = souk_chassis::http::untraced(souk_chassis::http::service_router(
        admin::router(admin),
        health,
        &http,
    ));
    if let Err(err) = souk_chassis::serve(listener, host_check(router), shutdown).await {
        tracing::error!(%err, "the admin listener failed");
    }
}

/// `kill -HUP` re-reads the configuration file.
async fn reload_on_sighup(admin: Admin, shutdown: Shutdown) {
    #[cfg(unix)]
    {
        let Some(path) = admin.config_path.clone() else {
            return;
        };
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return tracing::warn!("cannot listen for SIGHUP; reload through the admin API");
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {}
                () = shutdown.wait() => return,
            }
            match admin::reload(&admin.shared, &path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "configuration reloaded on SIGHUP")
                }
                Err(err) => {
                    tracing::error!(path = %path.display(), %err, "reload refused; the previous configuration stays")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (admin, shutdown);
}
