//! One supervised process: spawned, its output prefixed or filed, restarted with backoff when
//! it dies, and stopped gracefully (SIGTERM, a deadline, then SIGKILL) when asked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// First wait before restarting a crashed process; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A process that ran this long before dying starts the backoff over.
const STABLE: Duration = Duration::from_secs(30);

/// How to start a process.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// `catalog.1`, `gateway`: the log prefix.
    pub(crate) label: String,
    /// Arguments to this very executable (`serve catalog`).
    pub(crate) args: Vec<String>,
    /// Extra environment.
    pub(crate) env: Vec<(String, String)>,
    /// Where it serves (for the table and readiness).
    pub(crate) addr: SocketAddr,
    /// Its readiness URL.
    pub(crate) ready_url: String,
    /// Where its output goes.
    pub(crate) logs: Logs,
    /// How long it may take to stop after SIGTERM.
    pub(crate) stop_deadline: Duration,
}

/// Where a process's output goes.
#[derive(Debug, Clone)]
pub(crate) enum Logs {
    /// Our stdout, each line prefixed with the label.
    Prefixed,
    /// A file of its own.
    File(PathBuf),
}

/// A supervised process, as the supervisor and its control API see it.
#[derive(Debug)]
pub(crate) struct Supervised {
    pub(crate) spec: Spec,
    pid: AtomicU32,
    restarts: AtomicU32,
    stop: watch::Sender<bool>,
    /// While set, an exited process is not restarted (a chaos run keeps a killed service down).
    held: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Supervised {
    /// Starts `spec` and keeps it running until [`Supervised::stop`].
    pub(crate) fn start(spec: Spec) -> Arc<Self> {
        let (stop, stopped) = watch::channel(false);
        let this = Arc::new(Self {
            spec,
            pid: AtomicU32::new(0),
            restarts: AtomicU32::new(0),
            stop,
            held: watch::channel(false).0,
            task: tokio::sync::Mutex::new(None),
        });
        let task = tokio::spawn(keep_running(Arc::clone(&this), stopped));
        if let Ok(mut slot) = this.task.try_lock() {
            *slot = Some(task);
        }
        this
    }

    /// The current process id (0 between a crash and its restart).
    pub(crate) fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// How often it was restarted.
    pub(crate) fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Holds it down (an exit is not followed by a restart) or lets it be restarted at once.
    pub(crate) fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }

    /// Stops it for good: SIGTERM, then SIGKILL after the deadline. Returns when it is gone.
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn keep_running(this: Arc<Supervised>, mut stopped: watch::Receiver<bool>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut child = match spawn(&this.spec) {
            Ok(child) => child,
            Err(err) => {
                eprintln!("souk: cannot start {}: {err}", this.spec.label);
                return;
            }
        };
        // Held, not left in `child`: `Child::wait` closes the stdin it holds, and a closed stdin
        // tells the child its supervisor is gone.
        let _stdin = child.stdin.take();
        this.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let status = tokio::select! {
            status = child.wait() => status,
            () = until_stopped(&mut stopped) => {
                terminate(&mut child, this.spec.stop_deadline, &this.spec.label).await;
                this.pid.store(0, Ordering::Relaxed);
                return;
            }
        };
        this.pid.store(0, Ordering::Relaxed);
        if started.elapsed() > STABLE {
            backoff = FIRST_BACKOFF;
        }
        eprintln!(
            "souk: {} exited ({}); restarting in {} ms",
            this.spec.label,
            describe(status),
            backoff.as_millis()
        );
        let mut held = this.held.subscribe();
        if *held.borrow() {
            // Kept down on purpose: restarted as soon as the hold is lifted, with no backoff.
            tokio::select! {
                () = until_released(&mut held) => {}
                () = until_stopped(&mut stopped) => return,
            }
            this.restarts.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = until_stopped(&mut stopped) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        this.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Resolves once a stop is asked for (the guard `wait_for` returns is not `Send`, so drop it here).
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await.map(drop);
}

/// Resolves once the hold is lifted.
async fn until_released(held: &mut watch::Receiver<bool>) {
    let _ = held.wait_for(|held| !*held).await.map(drop);
}

fn spawn(spec: &Spec) -> std::io::Result<Child> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(souk_chassis::server::SUPERVISED_VAR, "1")
        // The child stops when this pipe closes: when we die, even by SIGKILL.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C in the terminal reaches only us, and we stop the
        // children in order instead of all at once.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward(stdout, spec.label.clone(), spec.logs.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward(stderr, spec.label.clone(), spec.logs.clone()));
    }
    Ok(child)
}

/// Copies a child's output line by line, prefixed, to our stdout or to its log file.
async fn forward(output: impl AsyncRead + Unpin, label: String, logs: Logs) {
    let mut lines = BufReader::new(output).lines();
    let mut file = match &logs {
        Logs::File(path) => tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .ok(),
        Logs::Prefixed => None,
    };
    while let Ok(Some(line)) = lines.next_line().await {
        match file.as_mut() {
            Some(file) => {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            }
            None => println!("{label:>12} | {line}"),
        }
    }
}

/// SIGTERM, wait up to `deadline`, then SIGKILL.
async fn terminate(child: &mut Child, deadline: Duration, label: &str) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(deadline, child.wait()).await.is_err() {
        eprintln!(
            "souk: {label} did not stop within {} s; killing it",
            deadline.as_secs()
        );
        let _ = child.kill().await;
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => "unknown status".into(),
        },
        Err(err) => format!("cannot wait for it: {err}"),
    }
}

/// Why a process did not become ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotReady {
    /// It kept exiting while starting (a bad configuration, most likely).
    Crashing,
    /// It ran but never answered its readiness check.
    TimedOut,
}

impl Supervised {
    /// Polls its readiness URL until it answers 2xx; gives up after `deadline`, or at once when
    /// it has exited three times while starting.
    pub(crate) async fn wait_ready(
        &self,
        client: &reqwest::Client,
        deadline: Duration,
    ) -> Result<(), NotReady> {
        let until = tokio::time::Instant::now() + deadline;
        while tokio::time::Instant::now() < until {
            if self.restarts() >= 3 {
                return Err(NotReady::Crashing);
            }
            if let Ok(response) = client.get(&self.spec.ready_url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(NotReady::TimedOut)
    }
}
