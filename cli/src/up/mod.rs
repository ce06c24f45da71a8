//! `souk up`: the whole shop on this machine, every service its own process behind the gateway,
//! supervised (crashed processes come back), scalable per service while running, and stopped
//! cleanly on Ctrl-C or SIGTERM with no process left behind.

mod control;
mod process;
mod timing;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use process::{Logs, Spec, Supervised};
use tokio::sync::Mutex;

use crate::gateway_config;
use crate::services::{Facts, Service, Storage};
use crate::state::{self, State};

/// How long every process gets to stop after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// How long a process (or, in the monolith, a service) may take to become ready.
pub(crate) const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Where the services keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    /// A SQLite file per service under the data dir.
    Embedded,
    /// A PostgreSQL database per service on the server named by `SOUK_POSTGRES_URL`, and carts
    /// on the Redis server named by `SOUK_REDIS_URL` (default `redis://127.0.0.1:6379`).
    Postgres,
}

/// What `souk up` was asked for.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) data_dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) instances: Vec<(Service, usize)>,
    pub(crate) backend: Backend,
    pub(crate) quiet: bool,
    /// Every rate limit of the gateway multiplied by this (1: as configured).
    pub(crate) rate_limit_factor: u32,
    /// Collect traces: the gateway receives every process's spans (OTLP/HTTP) and draws them.
    pub(crate) traces: bool,
}

/// The running shop.
#[derive(Debug)]
pub(crate) struct Shop {
    options: Options,
    /// Database URL per service.
    databases: BTreeMap<Service, String>,
    /// Where the first instance of each service listens, chosen before any starts: services
    /// that call each other are told these addresses (and restarts keep them).
    primary: BTreeMap<Service, SocketAddr>,
    /// Each calling service's secret at identity, made up for this run.
    secrets: BTreeMap<Service, String>,
    /// The key every storefront instance signs its forms' CSRF tokens with, made up for this
    /// run, so that a form rendered by one instance is accepted by another.
    csrf_secret: String,
    /// Where the cart keeps its event bookkeeping.
    cart_events: String,
    instances: Mutex<BTreeMap<Service, Vec<Arc<Supervised>>>>,
    gateway: Mutex<Option<Arc<Supervised>>>,
    gateway_addr: SocketAddr,
    admin_addr: SocketAddr,
    metrics_addr: SocketAddr,
    /// The gateway's trace receiver, which every process exports its spans to (none: no
    /// traces).
    otlp_addr: Option<SocketAddr>,
    /// The bearer token of the gateway's admin API and of the control API, made for this run.
    pub(crate) admin_token: String,
    /// The loopback address the storefront listens on and calls the gateway from: the only one
    /// whose `X-Forwarded-For` the gateway believes.
    storefront_ip: std::net::IpAddr,
    client: reqwest::Client,
    /// A client that carries the admin token, for the gateway's admin API.
    admin_client: reqwest::Client,
}

/// Runs `souk up` to the end. Errors are one line naming the problem and the fix.
pub(crate) fn run(options: Options) -> std::process::ExitCode {
    run_to_end("souk up", up(options))
}

/// Runs `work` on a small runtime; an error becomes one line on stderr and exit code 1.
pub(crate) fn run_to_end(
    command: &str,
    work: impl std::future::Future<Output = Result<(), String>>,
) -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(work),
        Err(err) => Err(format!("cannot start the async runtime: {err}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{command}: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What both topologies check before starting anything: inventory's hold outlives orders'
/// checkout ([`timing`]), the data dir can be written, no shop runs on it, and the gateway's port
/// is free.
pub(crate) fn preflight(options: &Options) -> Result<SocketAddr, String> {
    timing::check(&souk_chassis::Env::from_process())?;
    prepare_data_dir(&options.data_dir)?;
    if let Ok(running) = State::read(&options.data_dir) {
        return Err(format!(
            "a souk is already running on {} (pid {}): stop it, or pick another --data-dir",
            options.data_dir.display(),
            running.pid
        ));
    }
    let listen = SocketAddr::from(([127, 0, 0, 1], options.port));
    TcpListener::bind(listen).map_err(|err| {
        format!(
            "port {} is not free ({err}): pick another with --port",
            options.port
        )
    })?;
    Ok(listen)
}

async fn up(options: Options) -> Result<(), String> {
    let started = Instant::now();
    private_umask();
    let gateway_addr = preflight(&options)?;
    let databases = databases(&options).await?;
    let cart_events = cart_events_database(&options).await?;
    let storefront_ip = storefront_ip();
    let primary = Service::ALL
        .iter()
        .map(|s| {
            let ip = match *s == Service::STOREFRONT {
                true => storefront_ip,
                false => LOOPBACK,
            };
            Ok((*s, SocketAddr::new(ip, free_port_on(ip)?)))
        })
        .collect::<Result<_, String>>()?;
    let secrets = service_secrets()?;
    let admin_token = new_admin_token(&options.data_dir)?;
    let shop = Arc::new(Shop {
        primary,
        secrets,
        csrf_secret: random_hex()?,
        cart_events,
        admin_addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        metrics_addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        otlp_addr: match options.traces {
            true => Some(SocketAddr::from(([127, 0, 0, 1], free_port()?))),
            false => None,
        },
        gateway_addr,
        databases,
        instances: Mutex::new(BTreeMap::new()),
        gateway: Mutex::new(None),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?,
        admin_client: state::authorized_client(&admin_token, Duration::from_secs(2))?,
        admin_token,
        storefront_ip,
        options,
    });
    let shutdown = souk_chassis::Shutdown::on_os_signals(STOP_DEADLINE);
    let result = tokio::select! {
        result = start(&shop) => result,
        () = shutdown.wait() => Err("interrupted while starting".to_owned()),
    };
    if let Err(message) = result {
        shop.stop_all().await;
        return Err(message);
    }
    let control = control::serve(Arc::clone(&shop), shutdown.clone()).await?;
    let state = State {
        pid: std::process::id(),
        control: Some(control),
        gateway: shop.gateway_addr,
        admin: shop.admin_addr,
        metrics: Some(shop.metrics_addr),
        token: String::new(),
    };
    state
        .write(&shop.options.data_dir)
        .map_err(|e| format!("cannot write the state file: {e}"))?;
    print_table(&shop, started.elapsed()).await;
    shutdown.wait().await;
    println!("souk: stopping…");
    shop.stop_all().await;
    let _ = std::fs::remove_file(state::path(&shop.options.data_dir));
    let _ = std::fs::remove_file(state::token_path(&shop.options.data_dir));
    println!("souk: stopped");
    Ok(())
}

/// Starts every service's instances, waits for them, then the gateway in front of them.
async fn start(shop: &Arc<Shop>) -> Result<(), String> {
    for &service in &Service::ALL {
        let count = shop
            .options
            .instances
            .iter()
            .find(|(s, _)| *s == service)
            .map_or(1, |(_, n)| *n);
        shop.scale(service, count).await?;
    }
    shop.start_gateway().await
}

impl Shop {
    /// Starts or stops instances of `service` until it has `count`, keeping the gateway in step:
    /// new instances join the gateway once ready; leaving ones leave it before they stop, so
    /// no request is sent to a process that is going away.
    pub(crate) async fn scale(
        &self,
        service: Service,
        count: usize,
    ) -> Result<Vec<SocketAddr>, String> {
        if count == 0 || count > 16 {
            return Err(format!("{} can run 1 to 16 instances", service.name()));
        }
        let mut all = self.instances.lock().await;
        let current = all.entry(service).or_default();
        while current.len() < count {
            let index = current.len() + 1;
            let process = Supervised::start(self.instance_spec(service, index)?);
            if let Err(why) = process.wait_ready(&self.client, READY_DEADLINE).await {
                process.stop().await;
                return Err(self.not_ready(&process.spec.label, why));
            }
            current.push(process);
        }
        let leaving: Vec<_> = current.drain(count..).collect();
        let endpoints: Vec<SocketAddr> = current.iter().map(|p| p.spec.addr).collect();
        if self.gateway.lock().await.is_some() {
            self.set_gateway_endpoints(service, &endpoints).await?;
        }
        drop(all);
        for process in leaving {
            process.stop().await;
        }
        Ok(endpoints)
    }

    fn instance_spec(&self, service: Service, index: usize) -> Result<Spec, String> {
        let ip = match service == Service::STOREFRONT {
            true => self.storefront_ip,
            false => LOOPBACK,
        };
        let addr = match (index, self.primary.get(&service)) {
            (1, Some(addr)) => *addr,
            _ => SocketAddr::new(ip, free_port_on(ip)?),
        };
        let label = format!("{}.{index}", service.name());
        let data_dir = std::fs::canonicalize(&self.options.data_dir).map_err(|e| e.to_string())?;
        let facts = Facts {
            gateway: self.gateway_addr,
            data_dir: &data_dir,
            databases: &self.databases,
            secrets: &self.secrets,
            internal: &self.primary,
            csrf_secret: &self.csrf_secret,
            storefront_ip: self.storefront_ip,
            cart_events: &self.cart_events,
            cart_key_prefix: cart_key_prefix(&self.options),
        };
        let mut env = vec![(service.listen_var(), addr.to_string())];
        let own = service.process_env().iter();
        env.extend(own.map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        env.extend(service.pairs(&facts));
        env.extend(self.trace_env());
        Ok(Spec {
            args: vec!["serve".into(), service.name().into()],
            env,
            addr,
            ready_url: format!("http://{addr}/readyz"),
            logs: self.logs(&label),
            label,
            stop_deadline: STOP_DEADLINE,
        })
    }

    /// What points a process at the trace receiver: its address, and a batch sent every half
    /// second (the SDK's default, 5 s, would keep a shopper waiting for their trace).
    fn trace_env(&self) -> Vec<(String, String)> {
        self.otlp_addr.map_or_else(Vec::new, |otlp| {
            vec![
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                    format!("http://{otlp}"),
                ),
                ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "500".to_owned()),
            ]
        })
    }

    async fn start_gateway(&self) -> Result<(), String> {
        let instances = self.instances.lock().await;
        let endpoints: BTreeMap<Service, Vec<SocketAddr>> = instances
            .iter()
            .map(|(s, ps)| (*s, ps.iter().map(|p| p.spec.addr).collect()))
            .collect();
        drop(instances);
        let path = self.options.data_dir.join("gateway.toml");
        let data_dir = std::fs::canonicalize(&self.options.data_dir).map_err(|e| e.to_string())?;
        let listeners = gateway_config::Listeners {
            listen: self.gateway_addr,
            admin: self.admin_addr,
            metrics: self.metrics_addr,
            token_file: state::token_path(&data_dir).display().to_string(),
            otlp: self.otlp_addr,
        };
        let config = gateway_config::for_run(
            &listeners,
            &endpoints,
            &gateway_config::Tuning::of(&self.options),
        );
        let header =
            "# Written by `souk up` for the processes it started; rewritten on every start.\n";
        let config = gateway_config::render(&config, header)?;
        souk_chassis::private::write(&path, config.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let spec = Spec {
            label: "gateway".into(),
            args: vec![
                "serve".into(),
                "gateway".into(),
                "--config".into(),
                path.display().to_string(),
            ],
            env: self.trace_env(),
            addr: self.gateway_addr,
            ready_url: format!("http://{}/readyz", self.admin_addr),
            logs: self.logs("gateway"),
            stop_deadline: STOP_DEADLINE,
        };
        let process = Supervised::start(spec);
        if let Err(why) = process.wait_ready(&self.client, READY_DEADLINE).await {
            process.stop().await;
            return Err(self.not_ready("gateway", why));
        }
        *self.gateway.lock().await = Some(process);
        Ok(())
    }

    async fn set_gateway_endpoints(
        &self,
        service: Service,
        endpoints: &[SocketAddr],
    ) -> Result<(), String> {
        let url = format!(
            "http://{}/upstreams/{}/endpoints",
            self.admin_addr,
            service.name()
        );
        let response = self
            .admin_client
            .put(&url)
            .json(&serde_json::json!({ "endpoints": endpoints }))
            .send()
            .await
            .map_err(|e| format!("cannot reach the gateway's admin API: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "the gateway refused the new endpoints of {}: {}",
                service.name(),
                response.status()
            ));
        }
        Ok(())
    }

    /// One line on why `label` did not start, pointing at its log.
    fn not_ready(&self, label: &str, why: process::NotReady) -> String {
        let log = match self.logs(label) {
            Logs::File(path) => format!("see {}", path.display()),
            Logs::Prefixed => "see its log above".to_owned(),
        };
        match why {
            process::NotReady::Crashing => {
                format!("{label} keeps exiting as it starts (a bad setting?): {log}")
            }
            process::NotReady::TimedOut => format!(
                "{label} did not become ready within {} s: {log}",
                READY_DEADLINE.as_secs()
            ),
        }
    }

    fn logs(&self, label: &str) -> Logs {
        if self.options.quiet {
            Logs::File(
                self.options
                    .data_dir
                    .join("logs")
                    .join(format!("{label}.log")),
            )
        } else {
            Logs::Prefixed
        }
    }

    /// Stops the gateway first (so no new request comes in), then every instance, all gracefully.
    async fn stop_all(&self) {
        if let Some(gateway) = self.gateway.lock().await.take() {
            gateway.stop().await;
        }
        let all: Vec<_> = self
            .instances
            .lock()
            .await
            .values()
            .flatten()
            .cloned()
            .collect();
        futures::future::join_all(all.iter().map(|p| p.stop())).await;
    }

    /// Every process, for the table and the control API.
    pub(crate) async fn processes(&self) -> Vec<(String, Arc<Supervised>)> {
        let mut out: Vec<_> = self
            .instances
            .lock()
            .await
            .iter()
            .flat_map(|(s, ps)| ps.iter().map(move |p| (s.name().to_owned(), Arc::clone(p))))
            .collect();
        if let Some(gateway) = self.gateway.lock().await.as_ref() {
            out.push(("gateway".to_owned(), Arc::clone(gateway)));
        }
        out
    }
}

async fn print_table(shop: &Shop, took: Duration) {
    println!();
    println!("souk is up: every service ready in {} ms", took.as_millis());
    println!();
    println!(
        "  {:<10} {:<9} {:>8}  address",
        "service", "instance", "pid"
    );
    for (service, process) in shop.processes().await {
        let instance = process
            .spec
            .label
            .rsplit_once('.')
            .map_or("1", |(_, i)| i)
            .to_owned();
        println!(
            "  {service:<10} {instance:<9} {:>8}  http://{}",
            process.pid(),
            process.spec.addr
        );
    }
    println!();
    println!("  shop:          http://{}/", shop.gateway_addr);
    println!(
        "  shop API:      http://{}/api/v1/products",
        shop.gateway_addr
    );
    println!(
        "  OpenAPI:       http://{}/api/openapi.json",
        shop.gateway_addr
    );
    println!("  service map:   http://{}/map", shop.metrics_addr);
    if shop.otlp_addr.is_some() {
        println!(
            "  traces:        http://{}/waterfall (`souk trace <id>` in a terminal)",
            shop.metrics_addr
        );
    }
    println!(
        "  gateway admin: http://{}/upstreams (Authorization: Bearer $(cat {}))",
        shop.admin_addr,
        state::token_path(&shop.options.data_dir).display()
    );
    println!("  data:          {}", shop.options.data_dir.display());
    println!();
    println!("  `souk status` shows health, `souk scale catalog=2` scales; Ctrl-C stops the shop.");
    println!();
}

/// Creates the data dir (and its logs folder), `0700` — the shop's databases, logs and secrets
/// are its owner's alone — and checks it can be written to.
pub(crate) fn prepare_data_dir(dir: &Path) -> Result<(), String> {
    souk_chassis::private::dir(dir)
        .and_then(|()| souk_chassis::private::dir(&dir.join("logs")))
        .map_err(|e| {
            format!(
                "cannot create the data dir {} ({e}): pick another with --data-dir",
                dir.display()
            )
        })?;
    let probe = dir.join(".souk-write-test");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "cannot write to the data dir {} ({e}): pick another with --data-dir",
                dir.display()
            )
        })
}

/// A database URL per service: a SQLite file under the data dir, or a database of its own on the
/// PostgreSQL server named by `SOUK_POSTGRES_URL` (created when missing).
pub(crate) async fn databases(options: &Options) -> Result<BTreeMap<Service, String>, String> {
    let mut urls = BTreeMap::new();
    for service in Service::ALL.into_iter().filter(|s| s.storage().is_some()) {
        let url = match options.backend {
            Backend::Embedded => {
                let dir = std::fs::canonicalize(&options.data_dir).map_err(|e| e.to_string())?;
                format!("sqlite://{}/{}.db", dir.display(), service.name())
            }
            Backend::Postgres if service.storage() == Some(Storage::KeyValue) => {
                std::env::var("SOUK_REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
            }
            Backend::Postgres => {
                let prefix = server_prefix();
                let server = std::env::var("SOUK_POSTGRES_URL").map_err(|_| {
                    "--backend postgres needs SOUK_POSTGRES_URL, e.g. SOUK_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres".to_owned()
                })?;
                souk_chassis::db::create_database_if_missing(
                    &server,
                    &format!("{prefix}{}", service.name()),
                )
                .await
                .map_err(|e| {
                    format!(
                        "cannot prepare the {} database on SOUK_POSTGRES_URL: {}",
                        service.name(),
                        souk_chassis::problem::ErrorChain(&e)
                    )
                })?
            }
        };
        urls.insert(service, url);
    }
    Ok(urls)
}

/// What names this shop's data on shared servers: its PostgreSQL databases are `<prefix><service>`
/// and its Redis keys start with `<prefix>` — so several shops (or test runs) can share servers.
pub(crate) fn server_prefix() -> String {
    std::env::var("SOUK_POSTGRES_DATABASE_PREFIX").unwrap_or_else(|_| "souk_".to_owned())
}

/// The cart's Redis key prefix on the servers backend.
pub(crate) fn cart_key_prefix(options: &Options) -> Option<String> {
    (options.backend == Backend::Postgres).then(|| format!("{}cart:", server_prefix()))
}

/// A secret for every service that calls internal endpoints, made up for this run: identity is
/// told them, and each service its own.
pub(crate) fn service_secrets() -> Result<BTreeMap<Service, String>, String> {
    Service::ALL
        .iter()
        .filter(|s| s.calls_internally())
        .map(|service| Ok((*service, random_hex()?)))
        .collect()
}

/// A fixed mmap threshold for identity's glibc malloc. Each Argon2 hash takes a 19 MiB block; by
/// default glibc raises its mmap threshold after the first one is freed, so later blocks come from
/// the heap and stay resident: 60 sign-ups left identity at 618 MiB. At 4 MiB they are mapped and
/// unmapped each time (34 MiB after the same 60). Deploy manifests set the same variable.
pub(crate) const ARGON2_FRIENDLY_MALLOC: (&str, &str) =
    ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=4194304");

/// 24 random bytes as 48 hex digits: a secret made up for one run.
pub(crate) fn random_hex() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read random bytes for a secret: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where the cart keeps its event bookkeeping: beside its SQLite store, or a PostgreSQL database
/// of its own on the servers backend (its carts are in Redis).
pub(crate) async fn cart_events_database(options: &Options) -> Result<String, String> {
    match options.backend {
        Backend::Embedded => {
            let dir = std::fs::canonicalize(&options.data_dir).map_err(|e| e.to_string())?;
            Ok(format!("sqlite://{}/cart-events.db", dir.display()))
        }
        Backend::Postgres => {
            let server = std::env::var("SOUK_POSTGRES_URL")
                .map_err(|_| "--backend postgres needs SOUK_POSTGRES_URL".to_owned())?;
            let name = format!("{}cart", server_prefix());
            souk_chassis::db::create_database_if_missing(&server, &name)
                .await
                .map_err(|e| {
                    format!(
                        "cannot prepare the cart's events database on SOUK_POSTGRES_URL: {}",
                        souk_chassis::problem::ErrorChain(&e)
                    )
                })
        }
    }
}

/// Files this process and its children create are their owner's only (`0600`, folders `0700`),
/// whatever the umask of the shell that started the shop: logs, SQLite files, the generated
/// configuration. (The chassis makes its own files private too; this covers everything else.)
pub(crate) fn private_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Makes this run's admin token and writes it, `0600`, under `data_dir` (never into
/// `souk.json`).
pub(crate) fn new_admin_token(data_dir: &Path) -> Result<String, String> {
    let token = random_hex()?;
    state::write_token(data_dir, &token).map_err(|e| {
        format!(
            "cannot write the admin token in {}: {e}",
            data_dir.display()
        )
    })?;
    Ok(token)
}

/// 127.0.0.1.
const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The storefront's own loopback address, 127.0.0.8, where the machine has it (Linux gives a
/// process all of 127.0.0.0/8): the gateway believes `X-Forwarded-For` from it alone, not from
/// every local program. Elsewhere 127.0.0.1, where the storefront shares that trust with them.
pub(crate) fn storefront_ip() -> std::net::IpAddr {
    let own = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 8));
    match TcpListener::bind((own, 0)) {
        Ok(_) => own,
        Err(_) => LOOPBACK,
    }
}

/// A port free on `ip` right now: [`free_port`] on 127.0.0.1, else one the kernel picks.
pub(crate) fn free_port_on(ip: std::net::IpAddr) -> Result<u16, String> {
    if ip == LOOPBACK {
        return free_port();
    }
    for _ in 0..64 {
        let port = free_port()?;
        if TcpListener::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(format!("cannot find a free port on {ip}"))
}

/// A loopback port free right now (the process that gets it binds it moments later).
///
/// Every address is chosen before anything starts, because the services are told each other's.
/// A port from the kernel's ephemeral range (what binding port 0 gives) could be taken in that
/// moment by any outgoing connection on the machine — and a busy laptop or test run makes
/// thousands — so the port is drawn at random from below that range, where only listeners that
/// name their port live, and checked by binding it. Where the range leaves no room below it, the
/// kernel picks. A port is never handed out twice in one process, since none is bound yet when
/// the next is chosen.
pub(crate) fn free_port() -> Result<u16, String> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (low, high) = below_ephemeral_ports();
    if low < high {
        let mut rng = fastrand::Rng::new();
        for _ in 0..64 {
            let port = rng.u16(low..high);
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.insert(port);
                return Ok(port);
            }
        }
    }
    for _ in 0..64 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("cannot find a free loopback port: {e}"))?;
        if given.insert(port) {
            return Ok(port);
        }
    }
    Err("cannot find a free loopback port not handed out already".to_owned())
}

/// The ports `free_port` draws from: the half below the kernel's ephemeral range (Linux's
/// default 32768–60999 gives 16384–32767), never a privileged one; the same when the range
/// cannot be read.
fn below_ephemeral_ports() -> (u16, u16) {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    ((first_ephemeral / 2).max(1024), first_ephemeral)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice_and_sit_below_the_ephemeral_range() {
        let (low, high) = below_ephemeral_ports();
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len());
        if low < high {
            assert!(ports.iter().all(|p| (low..high).contains(p)), "{ports:?}");
        }
    }
}
