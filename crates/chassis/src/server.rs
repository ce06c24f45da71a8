//! Serving a router until shutdown: SIGTERM or Ctrl-C, then a bounded drain.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::serve::ListenerExt;

use crate::linger::{Linger, LingeringListener};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A shutdown signal that any number of tasks can wait on (server, relays, background loops).
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    drain: Duration,
    fired: Arc<OnceLock<Instant>>,
}

/// Fires a [`Shutdown`].
#[derive(Debug, Clone)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
    fired: Arc<OnceLock<Instant>>,
}

impl ShutdownTrigger {
    /// Starts shutdown; waiting tasks wake up. Firing twice is harmless.
    pub fn trigger(&self) {
        self.fired.get_or_init(Instant::now);
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// A signal fired by hand through the returned trigger (tests, `souk up`, the monolith).
    pub fn manual(drain: Duration) -> (ShutdownTrigger, Self) {
        let (tx, rx) = watch::channel(false);
        let fired = Arc::new(OnceLock::new());
        (
            ShutdownTrigger {
                tx,
                fired: fired.clone(),
            },
            Self { rx, drain, fired },
        )
    }

    /// A signal fired by SIGTERM or Ctrl-C. Must be called inside a Tokio runtime.
    pub fn on_os_signals(drain: Duration) -> Self {
        let (trigger, shutdown) = Self::manual(drain);
        tokio::spawn(async move {
            os_signal().await;
            tracing::info!("shutdown signal received");
            trigger.trigger();
        });
        shutdown
    }

    /// Resolves once shutdown has begun.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means every trigger is gone without firing: nothing can start shutdown any more.
        if rx.wait_for(|fired| *fired).await.is_err() {
            futures::future::pending::<()>().await;
        }
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// How long in-flight work may run after shutdown begins.
    pub fn drain_deadline(&self) -> Duration {
        self.drain
    }

    /// When everything must have stopped: the drain deadline after shutdown began (after now,
    /// if it has not).
    pub fn stop_by(&self) -> Instant {
        self.fired.get().copied().unwrap_or_else(Instant::now) + self.drain
    }
}

/// Serves `router` on `listener` until `shutdown`, then stops accepting and lets in-flight requests
/// finish, for at most the drain deadline.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let graceful = shutdown.clone();
    // Connections linger when they close (`linger`), so a client that writes its whole body
    // before reading gets an early answer (413) instead of a reset. `tap_io` sets TCP_NODELAY
    // (answers are small and whole: no reason to wait for more) and, as a wrapped listener,
    // gives handlers the peer's `SocketAddr` like a plain `TcpListener` would.
    let listener = LingeringListener::new(listener, Linger::DEFAULT).tap_io(|io| {
        let _ = io.get_ref().set_nodelay(true);
    });
    // Handlers may read the peer's address (`ConnectInfo<SocketAddr>`), e.g. to know whether a
    // request came through a trusted proxy.
    #[allow(clippy::disallowed_methods)] // This is the wrapper the lint points to.
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { graceful.wait().await });
    let deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(shutdown.drain_deadline()).await;
    };
    tokio::select! {
        result = std::future::IntoFuture::into_future(server) => result,
        () = deadline => {
            tracing::warn!(drain_ms = shutdown.drain_deadline().as_millis() as u64, "drain deadline passed; closing remaining connections");
            Ok(())
        }
    }
}

/// The body of a service binary's `main`: reads the environment once, starts a multi-threaded
/// runtime and telemetry, runs `service`, and turns a failure into a message and exit code 1.
pub fn run_main<F, Fut, E>(name: &str, service: F) -> std::process::ExitCode
where
    F: FnOnce(crate::Env) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    let env = crate::Env::from_process();
    let run = on_runtime(async move {
        let _telemetry = match crate::telemetry::init(&crate::telemetry::TelemetryConfig::from_env(
            name, &env,
        )) {
            Ok(guard) => guard,
            Err(err) => {
                eprintln!("souk-{name}: {}", crate::problem::ErrorChain(&err));
                return std::process::ExitCode::FAILURE;
            }
        };
        match service(env).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(error = %crate::problem::ErrorChain(&err), "{name} stopped");
                eprintln!("souk-{name}: {}", crate::problem::ErrorChain(&err));
                std::process::ExitCode::FAILURE
            }
        }
    });
    run.unwrap_or_else(|err| {
        eprintln!("souk-{name}: cannot start the async runtime: {err}");
        std::process::ExitCode::FAILURE
    })
}

/// Runs `main` on a new multi-threaded runtime, then leaves, waiting at most [`EXIT_WAIT`] for
/// blocking tasks still running. Dropping the runtime would wait for every one of them, and a
/// name lookup stuck in getaddrinfo (a container network's DNS that does not answer) can take
/// tens of seconds: the service has stopped within its deadline, so its exit must not wait.
fn on_runtime<T>(main: impl std::future::Future<Output = T>) -> std::io::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(main);
    runtime.shutdown_timeout(EXIT_WAIT);
    Ok(output)
}

/// How long the exit waits for blocking tasks still running once the service has stopped.
const EXIT_WAIT: Duration = Duration::from_millis(500);

async fn os_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            futures::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                futures::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = futures::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
        () = supervisor_gone() => tracing::warn!("the supervisor is gone; stopping"),
    }
}

/// The variable a supervisor (`souk up`) sets on its children: they then also stop when their
/// stdin closes, which happens when the supervisor dies — even by SIGKILL — so no child outlives it.
pub const SUPERVISED_VAR: &str = "SOUK_SUPERVISED";

async fn supervisor_gone() {
    if std::env::var_os(SUPERVISED_VAR).is_none() {
        return futures::future::pending().await;
    }
    // A plain thread, not tokio's stdin: tokio reads stdin on its blocking pool, and a read that
    // cannot be cancelled would hold up the runtime's shutdown until the supervisor closed the pipe.
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new().name("supervisor-watch".into()).spawn(move || {
        let mut buf = [0u8; 64];
        loop {
            match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                // A non-blocking stdin (or a signal) is no sign of the supervisor's death.
                Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot watch stdin for the supervisor; it will not be noticed going");
                    return;
                }
            }
        }
        let _ = closed.send(());
    });
    if spawned.is_err() || on_close.await.is_err() {
        futures::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[test]
    fn the_exit_does_not_wait_for_a_blocking_task_that_is_stuck() {
        let started = Instant::now();
        let done = on_runtime(async {
            // What a lookup in getaddrinfo that gets no answer looks like to the runtime.
            drop(tokio::task::spawn_blocking(|| {
                std::thread::sleep(Duration::from_secs(30))
            }));
            "stopped"
        })
        .unwrap();
        assert_eq!(done, "stopped");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "left after {:?}",
            started.elapsed()
        );
    }

    async fn spawn(
        router: Router,
        drain: Duration,
    ) -> (
        std::net::SocketAddr,
        ShutdownTrigger,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::manual(drain);
        (
            addr,
            trigger,
            tokio::spawn(serve(listener, router, shutdown)),
        )
    }

    #[tokio::test]
    async fn in_flight_requests_finish_after_shutdown_begins() {
        let router = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        );
        let (addr, trigger, server) = spawn(router, Duration::from_secs(5)).await;
        let request = tokio::spawn(reqwest::get(format!("http://{addr}/slow")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.trigger();
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.text().await.unwrap(), "done");
        server.await.unwrap().unwrap();
        assert!(
            reqwest::get(format!("http://{addr}/slow")).await.is_err(),
            "no longer accepting"
        );
    }

    #[tokio::test]
    async fn the_drain_deadline_bounds_shutdown() {
        let router = Router::new().route("/hang", get(futures::future::pending::<&'static str>));
        let (addr, trigger, server) = spawn(router, Duration::from_millis(200)).await;
        let _hanging = tokio::spawn(reqwest::get(format!("http://{addr}/hang")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        trigger.trigger();
        server.await.unwrap().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "stopped after {:?}",
            started.elapsed()
        );
    }
}
