//! `souk chaos`: a fault injected into a running `souk up` during a bench run — a service killed
//! (and optionally kept down), paused, slowed or made to fail — then the blast radius: every
//! endpoint's errors and p99 before, during and after the fault, how long the shop took to
//! recover, and the checkout saga's invariants once every order has ended.
//!
//! Kill and pause signal the processes `souk up` started (their pids come from its control API);
//! keeping a killed service down uses the control API's hold; delay and abort go through the
//! gateway admin's fault injection on the service's upstream.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::histograms::{self, Summary};
use super::invariants::{self, Check};
use super::{Fixture, Load, Report};
use crate::state::State;

/// `souk chaos`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("fault").required(true).args(["kill", "pause", "delay", "abort"])))]
pub(crate) struct ChaosArgs {
    #[command(flatten)]
    pub(crate) load: Load,
    /// SIGKILL the service's processes (the supervisor restarts them; with --for, after D).
    #[arg(long, value_name = "SERVICE")]
    pub(crate) kill: Option<String>,
    /// SIGSTOP the service's processes, SIGCONT them after --for.
    #[arg(long, value_name = "SERVICE")]
    pub(crate) pause: Option<String>,
    /// Delay every request the gateway sends the service by MS milliseconds.
    #[arg(long, value_name = "SERVICE=MS")]
    pub(crate) delay: Option<String>,
    /// Answer PCT percent of the gateway's requests to the service with a 503.
    #[arg(long, value_name = "SERVICE=PCT")]
    pub(crate) abort: Option<String>,
    /// When the fault starts, after the measured phase starts.
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    pub(crate) at: Duration,
    /// How long the fault lasts (a bare --kill lasts until the supervisor has restarted it).
    #[arg(long = "for", value_parser = super::parse_duration)]
    pub(crate) lasting: Option<Duration>,
    /// Where to write the blast-radius report.
    #[arg(long, default_value = "souk-chaos-report")]
    pub(crate) report: PathBuf,
}

/// A fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub(crate) enum Fault {
    Kill { service: String },
    Pause { service: String },
    Delay { service: String, ms: u64 },
    Abort { service: String, percent: u8 },
}

impl Fault {
    fn parse(args: &ChaosArgs) -> Result<Self, String> {
        let split = |text: &str| -> Result<(String, String), String> {
            text.split_once('=')
                .map(|(s, v)| (s.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("{text:?} is not SERVICE=VALUE"))
        };
        if let Some(service) = &args.kill {
            return Ok(Self::Kill {
                service: service.clone(),
            });
        }
        if let Some(service) = &args.pause {
            return Ok(Self::Pause {
                service: service.clone(),
            });
        }
        if let Some(text) = &args.delay {
            let (service, ms) = split(text)?;
            let ms = ms
                .parse()
                .map_err(|_| format!("{ms:?} is not a number of milliseconds"))?;
            return Ok(Self::Delay { service, ms });
        }
        if let Some(text) = &args.abort {
            let (service, percent) = split(text)?;
            let percent = percent
                .parse()
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("{percent:?} is not a percentage"))?;
            return Ok(Self::Abort { service, percent });
        }
        Err("name a fault: --kill, --pause, --delay or --abort".to_owned())
    }

    fn service(&self) -> &str {
        match self {
            Self::Kill { service }
            | Self::Pause { service }
            | Self::Delay { service, .. }
            | Self::Abort { service, .. } => service,
        }
    }
}

/// Runs `souk chaos`.
pub(crate) fn run(args: ChaosArgs) -> std::process::ExitCode {
    crate::up::run_to_end("souk chaos", async move {
        let blast = chaos(&args).await?;
        blast.print();
        blast.write(&args.report)?;
        println!("  report: {}", args.report.display());
        Ok(())
    })
}

/// The blast-radius report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BlastRadius {
    pub(crate) fault: Fault,
    /// When the fault started and ended, in seconds since the start of the measured phase.
    pub(crate) fault_from_s: f64,
    pub(crate) fault_until_s: f64,
    /// Per endpoint: before, during and after the fault.
    pub(crate) endpoints: BTreeMap<String, Windows>,
    /// Endpoints the fault touched (errors, or a p99 more than doubled and 50 ms slower).
    pub(crate) touched: Vec<String>,
    pub(crate) untouched: Vec<String>,
    /// Endpoints with no request while the fault lasted: nothing can be said of them.
    pub(crate) unexercised: Vec<String>,
    /// From the end of the fault to the last error seen (0 when none came after it).
    pub(crate) recovered_after_s: f64,
    /// Orders accepted while the fault lasted, and how they ended.
    pub(crate) accepted_during: usize,
    pub(crate) ended: BTreeMap<String, usize>,
    /// The saga's invariants, or why they were not checked.
    pub(crate) invariants: Result<Vec<Check>, String>,
    pub(crate) run: Report,
}

/// One endpoint around a fault.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Windows {
    pub(crate) before: Summary,
    pub(crate) during: Summary,
    pub(crate) after: Summary,
}

pub(crate) async fn chaos(args: &ChaosArgs) -> Result<BlastRadius, String> {
    let fault = Fault::parse(args)?;
    // A bare kill lasts until the supervisor has restarted the service: a second or so.
    let lasting = match (&fault, args.lasting) {
        (_, Some(lasting)) => lasting,
        (Fault::Kill { .. }, None) => Duration::from_secs(1),
        (_, None) => Duration::from_secs(10),
    };
    if args.load.duration < args.at + lasting + Duration::from_secs(2) {
        return Err(format!(
            "--duration must leave at least 2 s after the fault: at least {} s here",
            (args.at + lasting).as_secs() + 2
        ));
    }
    let state = State::read(&args.load.data_dir)?;
    let mut load = args.load.clone();
    load.target
        .get_or_insert_with(|| format!("http://{}", state.gateway));
    let base = super::target(&load)?;
    let injector = Injector::new(&state, &fault)?;
    injector.check().await?;
    let fixture = Fixture::prepare(&load, &base).await?;
    let start = Instant::now() + Duration::from_millis(100);
    let fault_task = {
        let (injector, at) = (injector.clone(), args.at);
        let lasting = args.lasting;
        tokio::spawn(async move { injector.inject(start, at, lasting).await })
    };
    let measured = tokio::select! {
        measured = fixture.measure(&load, start, true) => measured,
        _ = tokio::signal::ctrl_c() => {
            // Never leave a shop held down, paused or slowed behind us.
            fault_task.abort();
            injector.lift().await;
            return Err("interrupted: the fault is lifted".to_owned());
        }
    };
    let (run, shop) = measured?;
    let (from, until) = fault_task
        .await
        .map_err(|e| format!("the fault task failed: {e}"))??;
    let samples = shop.recorder.samples();
    let accepted = shop.orders.all();
    let ended = drain(&shop.client, &base, &accepted).await;
    let ids: Vec<String> = accepted.iter().map(|a| a.id.clone()).collect();
    let invariants = match invariants::place(&load.data_dir) {
        Some(place) => invariants::check(&place, &ids, Duration::from_secs(60)).await,
        None => Err(format!(
            "not checked: no SQLite books under {}, and no SOUK_POSTGRES_URL naming the server of a --backend postgres shop",
            load.data_dir.display()
        )),
    };
    let windows = windows(&samples, from, until);
    let (touched, untouched, unexercised) = split_touched(&windows);
    let last_error = samples
        .iter()
        .filter(|s| s.outcome.error_kind().is_some() && s.at >= until)
        .map(|s| s.at + s.latency)
        .max();
    let during: Vec<_> = accepted
        .iter()
        .filter(|a| a.at >= from && a.at < until)
        .map(|a| a.id.clone())
        .collect();
    let mut ended_during: BTreeMap<String, usize> = BTreeMap::new();
    for id in &during {
        *ended_during
            .entry(ended.get(id).cloned().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
    }
    Ok(BlastRadius {
        fault,
        fault_from_s: from.as_secs_f64(),
        fault_until_s: until.as_secs_f64(),
        endpoints: windows,
        touched,
        untouched,
        unexercised,
        recovered_after_s: last_error.map_or(0.0, |e| e.saturating_sub(until).as_secs_f64()),
        accepted_during: during.len(),
        ended: ended_during,
        invariants,
        run,
    })
}

fn windows(
    samples: &[histograms::Sample],
    from: Duration,
    until: Duration,
) -> BTreeMap<String, Windows> {
    let before = histograms::by_endpoint(samples, Duration::ZERO, from);
    let during = histograms::by_endpoint(samples, from, until);
    let after = histograms::by_endpoint(samples, until, Duration::MAX);
    let names: std::collections::BTreeSet<&str> = before
        .keys()
        .chain(during.keys())
        .chain(after.keys())
        .copied()
        .collect();
    let summary = |m: &BTreeMap<&str, histograms::Stats>, n: &str| {
        m.get(n).cloned().unwrap_or_default().summary()
    };
    names
        .into_iter()
        .map(|n| {
            let w = Windows {
                before: summary(&before, n),
                during: summary(&during, n),
                after: summary(&after, n),
            };
            (n.to_owned(), w)
        })
        .collect()
}

/// Touched: any error while the fault lasted, or a p99 during it more than twice and 50 ms above
/// both before and after (on a busy machine a whole run's p99 drifts; the fault's own mark is
/// what stands out from both sides of it).
fn split_touched(windows: &BTreeMap<String, Windows>) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut touched = Vec::new();
    let mut untouched = Vec::new();
    let mut unexercised = Vec::new();
    for (name, w) in windows {
        if w.during.requests == 0 {
            unexercised.push(name.clone());
            continue;
        }
        let errors = !w.during.errors.is_empty();
        let slower =
            w.during.p99_ms > 2.0 * w.before.p99_ms && w.during.p99_ms > w.before.p99_ms + 50.0;
        if errors || slower {
            touched.push(name.clone());
        } else {
            untouched.push(name.clone());
        }
    }
    (touched, untouched, unexercised)
}

/// Reads every accepted order until it has ended (for at most 90 s in all); id → last status.
async fn drain(
    client: &reqwest::Client,
    base: &str,
    accepted: &[super::users::Accepted],
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = BTreeMap::new();
    for order in accepted {
        loop {
            let url = format!("{base}/api/v1/orders/{}", order.id);
            let status = match client.get(&url).bearer_auth(&order.token).send().await {
                Ok(r) if r.status().is_success() => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|o| o["status"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unreadable".into()),
                _ => "unreadable".into(),
            };
            let ended = status == "confirmed" || status == "cancelled";
            if ended || Instant::now() > deadline {
                seen.insert(order.id.clone(), status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    seen
}

/// Applies a fault to a running shop.
#[derive(Debug, Clone)]
struct Injector {
    fault: Fault,
    control: Option<std::net::SocketAddr>,
    admin: std::net::SocketAddr,
    client: reqwest::Client,
}

impl Injector {
    fn new(state: &State, fault: &Fault) -> Result<Self, String> {
        Ok(Self {
            fault: fault.clone(),
            control: state.control,
            admin: state.admin,
            // The gateway's admin API and the supervisor's control API want this run's token.
            client: state.client(Duration::from_secs(5))?,
        })
    }

    /// Fails early when the fault cannot be applied (no such service, no processes to signal).
    async fn check(&self) -> Result<(), String> {
        match &self.fault {
            Fault::Kill { service } | Fault::Pause { service } => {
                if self.pids(service).await?.is_empty() {
                    return Err(format!("no running process of {service:?}"));
                }
                Ok(())
            }
            Fault::Delay { service, .. } | Fault::Abort { service, .. } => {
                let upstreams: Value = self
                    .client
                    .get(format!("http://{}/upstreams", self.admin))
                    .send()
                    .await
                    .map_err(|e| format!("cannot reach the gateway's admin API: {e}"))?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let known = upstreams
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|u| u["name"] == service.as_str());
                if known {
                    Ok(())
                } else {
                    Err(format!("the gateway has no upstream {service:?}"))
                }
            }
        }
    }

    /// Waits until `start + at`, applies the fault, lifts it after `lasting`; the window
    /// (since `start`) the fault lasted.
    async fn inject(
        &self,
        start: Instant,
        at: Duration,
        lasting: Option<Duration>,
    ) -> Result<(Duration, Duration), String> {
        tokio::time::sleep_until(start + at).await;
        let from = start.elapsed();
        let service = self.fault.service().to_owned();
        let span = lasting.unwrap_or(Duration::from_secs(10));
        match &self.fault {
            Fault::Kill { .. } => {
                if lasting.is_some() {
                    self.hold(&service, true).await?;
                }
                let pids = self.pids(&service).await?;
                signal(&pids, Signal::SIGKILL);
                match lasting {
                    Some(span) => {
                        tokio::time::sleep(span).await;
                        self.hold(&service, false).await?;
                    }
                    None => self.back(&service, &pids).await?,
                }
            }
            Fault::Pause { .. } => {
                let pids = self.pids(&service).await?;
                signal(&pids, Signal::SIGSTOP);
                tokio::time::sleep(span).await;
                signal(&pids, Signal::SIGCONT);
            }
            Fault::Delay { ms, .. } => {
                self.gateway_fault(
                    &service,
                    Some(json!({ "delay_ms": ms, "delay_percent": 100 })),
                )
                .await?;
                tokio::time::sleep(span).await;
                self.gateway_fault(&service, None).await?;
            }
            Fault::Abort { percent, .. } => {
                self.gateway_fault(
                    &service,
                    Some(json!({ "abort_status": 503, "abort_percent": percent })),
                )
                .await?;
                tokio::time::sleep(span).await;
                self.gateway_fault(&service, None).await?;
            }
        }
        Ok((from, start.elapsed()))
    }

    /// Undoes the fault, whatever point it had reached (each step is harmless when not needed).
    async fn lift(&self) {
        let service = self.fault.service().to_owned();
        match &self.fault {
            Fault::Kill { .. } => {
                let _ = self.hold(&service, false).await;
            }
            Fault::Pause { .. } => {
                if let Ok(pids) = self.pids(&service).await {
                    signal(&pids, Signal::SIGCONT);
                }
            }
            Fault::Delay { .. } | Fault::Abort { .. } => {
                let _ = self.gateway_fault(&service, None).await;
            }
        }
    }

    fn control(&self) -> Result<std::net::SocketAddr, String> {
        self.control.ok_or_else(|| "this shop runs as one process (souk monolith): there is no process of a service to signal; use --delay or --abort".to_owned())
    }

    /// The running processes of `service`, from the supervisor.
    async fn pids(&self, service: &str) -> Result<Vec<u32>, String> {
        let url = format!("http://{}/processes", self.control()?);
        let processes: Vec<Value> = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("cannot reach souk up's control API: {e}"))?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(processes
            .iter()
            .filter(|p| p["service"] == service)
            .filter_map(|p| p["pid"].as_u64().and_then(|pid| u32::try_from(pid).ok()))
            .filter(|pid| *pid != 0)
            .collect())
    }

    /// Tells the supervisor to keep the service's exited processes down (or to restart them).
    async fn hold(&self, service: &str, held: bool) -> Result<(), String> {
        let url = format!("http://{}/services/{service}/hold", self.control()?);
        let response = self
            .client
            .put(&url)
            .json(&json!({ "held": held }))
            .send()
            .await
            .map_err(|e| format!("cannot reach souk up's control API: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "souk up refused to hold {service}: {}",
                response.status()
            ))
        }
    }

    /// Waits (up to 60 s) until every killed process has been replaced.
    async fn back(&self, service: &str, killed: &[u32]) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let now = self.pids(service).await?;
            if now.len() >= killed.len() && now.iter().all(|p| !killed.contains(p)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("{service} was not restarted within 60 s"))
    }

    async fn gateway_fault(&self, service: &str, fault: Option<Value>) -> Result<(), String> {
        let url = format!("http://{}/faults/upstreams/{service}", self.admin);
        let request = match &fault {
            Some(body) => self.client.put(&url).json(body),
            None => self.client.delete(&url),
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach the gateway's admin API: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "the gateway refused the fault on {service}: {}",
                response.status()
            ))
        }
    }
}

fn signal(pids: &[u32], signal: Signal) {
    for pid in pids {
        if let Ok(pid) = i32::try_from(*pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }
}

impl BlastRadius {
    pub(crate) fn print(&self) {
        self.run.print();
        println!();
        println!("{}", self.markdown());
    }

    /// Writes chaos.json, blast-radius.md and the run's report into `dir`.
    pub(crate) fn write(&self, dir: &std::path::Path) -> Result<(), String> {
        self.run.write(dir)?;
        let fault = Some((self.fault_from_s, self.fault_until_s));
        let plot = dir.join("latency-over-time.svg");
        super::plots::latency_over_time(&self.run.timeline, fault, &plot)?;
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("chaos.json"), json).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("blast-radius.md"), self.markdown()).map_err(|e| e.to_string())
    }

    /// The blast radius in words and tables.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let fault = match &self.fault {
            Fault::Kill { service } => format!("{service} killed (SIGKILL)"),
            Fault::Pause { service } => format!("{service} paused (SIGSTOP)"),
            Fault::Delay { service, ms } => format!("{service} slowed by {ms} ms at the gateway"),
            Fault::Abort { service, percent } => {
                format!("{percent} % of requests to {service} answered 503 at the gateway")
            }
        };
        out.push_str(&format!(
            "## Blast radius: {fault}, from {:.1} s to {:.1} s\n\n",
            self.fault_from_s, self.fault_until_s
        ));
        out.push_str(&format!(
            "Touched: {}.  \nNot touched: {}.  \n",
            list(&self.touched),
            list(&self.untouched)
        ));
        if !self.unexercised.is_empty() {
            out.push_str(&format!(
                "Not sent while it lasted (nothing to say): {}.  \n",
                self.unexercised.join(", ")
            ));
        }
        out.push_str(&format!(
            "Recovered {:.1} s after the fault ended (the last error).  \n",
            self.recovered_after_s
        ));
        out.push_str(&format!(
            "Orders accepted while it lasted: {}, ended {}.\n\n",
            self.accepted_during,
            if self.ended.is_empty() {
                "-".to_owned()
            } else {
                self.ended
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        out.push_str("| endpoint | before: requests / errors / p99 ms | during | after |\n|---|---|---|---|\n");
        let cell = |s: &Summary| {
            format!(
                "{} / {} / {:.1}",
                s.requests,
                s.errors.values().sum::<u64>(),
                s.p99_ms
            )
        };
        for (name, w) in &self.endpoints {
            out.push_str(&format!(
                "| {name} | {} | {} | {} |\n",
                cell(&w.before),
                cell(&w.during),
                cell(&w.after)
            ));
        }
        out.push_str("\nInvariants of the checkout saga, once every order had ended:\n\n");
        match &self.invariants {
            Ok(checks) => {
                for check in checks {
                    let verdict = if check.violations.is_empty() {
                        "held".to_owned()
                    } else {
                        format!("BROKEN {} times", check.violations.len())
                    };
                    out.push_str(&format!("- {}: {verdict}\n", check.invariant));
                    for v in check.violations.iter().take(5) {
                        out.push_str(&format!("  - {v}\n"));
                    }
                }
            }
            Err(why) => out.push_str(&format!("- {why}\n")),
        }
        out
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}
