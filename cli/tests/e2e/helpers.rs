//! Starting `souk up` as a child process and talking to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// The built `souk` binary.
pub fn souk() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_souk"));
    command
        .env_remove("SOUK_POSTGRES_URL")
        .env("SOUK_LOG", "warn");
    command
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `souk up`, stopped (SIGKILL) when dropped if the test did not stop it.
pub struct Shop {
    pub child: Option<Child>,
    pub data_dir: tempfile::TempDir,
    pub gateway: SocketAddr,
    pub admin: SocketAddr,
    /// The gateway's read-only listener: the service map, without a token.
    pub metrics: SocketAddr,
    pub control: Option<SocketAddr>,
    pub client: reqwest::Client,
    /// The run's admin token (`<data dir>/admin-token`), for the admin and control APIs.
    pub token: String,
}

impl Shop {
    /// `souk up --quiet` with `extra` arguments; waits until it has published its state.
    pub async fn up(extra: &[&str]) -> Shop {
        Self::start("up", extra).await
    }

    /// `souk <topology> --quiet` (`up` or `monolith`); waits until it has published its state.
    pub async fn start(topology: &str, extra: &[&str]) -> Shop {
        Self::start_with_env(topology, extra, &[]).await
    }

    /// Like [`Shop::start`], with extra environment for `souk`.
    pub async fn start_with_env(topology: &str, extra: &[&str], env: &[(&str, &str)]) -> Shop {
        Self::start_in(tempfile::tempdir().unwrap(), topology, extra, env).await
    }

    /// Like [`Shop::start_with_env`], on a data dir made beforehand (so `env` may name paths in
    /// it). `souk up` passes its whole environment on to the processes it starts.
    pub async fn start_in(
        data_dir: tempfile::TempDir,
        topology: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Shop {
        let port = free_port();
        let child = souk()
            .args([
                topology,
                "--quiet",
                "--port",
                &port.to_string(),
                "--data-dir",
            ])
            .arg(data_dir.path())
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let state = wait_for_state(data_dir.path(), Duration::from_secs(60));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let addr = |key: &str| state[key].as_str().unwrap().parse().unwrap();
        let token = std::fs::read_to_string(data_dir.path().join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Shop {
            gateway: addr("gateway"),
            admin: addr("admin"),
            metrics: addr("metrics"),
            token,
            control: state["control"].as_str().map(|c| c.parse().unwrap()),
            child: Some(child),
            data_dir,
            client,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("http://{}{path}", self.gateway))
            .send()
            .await
            .unwrap()
    }

    /// `GET /traces?{query}` on the gateway's read-only listener: the traces it collected.
    pub async fn traces(&self, query: &str) -> Value {
        self.client
            .get(format!("http://{}/traces?{query}", self.metrics))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The supervised processes, from the control API.
    pub async fn processes(&self) -> Vec<Value> {
        let url = format!("http://{}/processes", self.control.unwrap());
        self.client
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    }

    /// The pid of `service`'s first process.
    pub async fn pid_of(&self, service: &str) -> u32 {
        let processes = self.processes().await;
        let process = processes
            .iter()
            .find(|p| p["service"] == service)
            .unwrap_or_else(|| panic!("no process of {service}"));
        u32::try_from(process["pid"].as_u64().unwrap()).unwrap()
    }

    /// Keeps `service` down once its processes exit (`held`), or lets them restart.
    pub async fn hold(&self, service: &str, held: bool) {
        let url = format!("http://{}/services/{service}/hold", self.control.unwrap());
        let response = self
            .client
            .put(url)
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "held": held }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }

    /// The gateway's view of its upstreams.
    pub async fn upstreams(&self) -> Vec<Value> {
        let url = format!("http://{}/upstreams", self.admin);
        self.client
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    }

    /// The gateway's view of one upstream.
    pub async fn upstream(&self, name: &str) -> Value {
        self.upstreams()
            .await
            .into_iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("no upstream {name}"))
    }

    /// SIGTERM, then waits for `souk up` to exit; returns its exit status and how long it took.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        signal(child.id(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "souk up did not stop within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn data_dir_state(dir: &Path) -> PathBuf {
    dir.join("souk.json")
}

fn wait_for_state(dir: &Path, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(data_dir_state(dir))
            && let Ok(state) = serde_json::from_str::<Value>(&text)
        {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "souk up did not come up within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn signal(pid: u32, signal: Signal) {
    let _ = kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal);
}

/// Whether a process exists (zombies of other parents count as gone once reaped).
pub fn alive(pid: u32) -> bool {
    if kill(Pid::from_raw(i32::try_from(pid).unwrap()), None).is_err() {
        return false;
    }
    // A zombie still answers signal 0; it is not running.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// Waits until `check` holds, for at most `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The variable that says NATS tests may run on this machine (the shared server's URL); the
/// tests below start servers of their own and never touch that one.
pub const NATS_URL_VAR: &str = "SOUK_TEST_NATS_URL";

/// A NATS server with JetStream of a test's own: free loopback ports, its store in a temporary
/// dir, stopped (SIGKILL, by its pid) and started again at will, killed when dropped.
pub struct NatsServer {
    pub port: u16,
    monitor: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts one, or `None` (saying so) when `SOUK_TEST_NATS_URL` is not set; with it set,
    /// failing to start `nats-server` fails the test.
    pub async fn start_if_enabled(test: &str) -> Option<Self> {
        if std::env::var_os(NATS_URL_VAR).is_none() {
            eprintln!(
                "skipped: {NATS_URL_VAR} is not set, so {test} (its own nats-server) did not run"
            );
            return None;
        }
        let mut server = Self {
            port: free_port(),
            monitor: 0,
            store: tempfile::tempdir().unwrap(),
            child: None,
        };
        assert_ne!(server.port, 4222, "never the shared server's port");
        server.restart().await;
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.store.path().join("nats.log")
    }

    /// Starts the process (again: same client port, same store) and waits until JetStream is
    /// ready. The monitoring port, which only this harness reads, is a fresh one each time:
    /// while the server was down another test's socket could take the old one (seen in CI:
    /// `bind: address already in use` on a restart).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.monitor = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string(), "-js", "-sd"])
            .arg(self.store.path().join("jetstream"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{NATS_URL_VAR} is set but nats-server cannot start: {e}"));
        self.child = Some(child);
        let started = Instant::now();
        let health = format!(
            "http://127.0.0.1:{}/healthz?js-enabled-only=true",
            self.monitor
        );
        loop {
            let ready = reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "nats-server exited ({status}): {}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server not ready within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process (SIGKILL, by its pid) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The environment that puts every producer and consumer of the shop on this server.
    pub fn shop_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for service in [
            "CATALOG",
            "ORDERS",
            "PAYMENTS",
            "INVENTORY",
            "CART",
            "HISTORY",
        ] {
            env.push((
                format!("SOUK_{service}__EVENTS__TRANSPORT"),
                "nats".to_owned(),
            ));
            env.push((format!("SOUK_{service}__EVENTS__NATS__URL"), self.url()));
        }
        env
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy a test can cut: in front of a shared server (Redis), so a test can take it away
/// from one shop for a while without touching the server everyone else uses.
pub struct CuttableProxy {
    pub addr: SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::AbortHandle,
}

impl CuttableProxy {
    /// Forwards loopback connections to `upstream` until cut.
    pub async fn start(upstream: SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_cut, open) = (cut.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().unwrap().push(link.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            cut,
            links,
            accept,
        }
    }

    /// Drops every connection, and every new one until [`CuttableProxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
