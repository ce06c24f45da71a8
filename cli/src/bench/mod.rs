//! `souk bench`: open-loop load on a shop at a fixed arrival rate, with HDR histograms per
//! endpoint, a progress bar, a summary table and a report directory (results.json + SVG plots);
//! `souk bench --compare` (monolith against microservices, and catalog scaling); and
//! `souk chaos` (a fault during a run, and its blast radius).
//!
//! - [`scheduler`]: when each request is due, and sending it then.
//! - [`scenario`]: what each request is; [`users`]: the shop's products and the virtual users.
//! - [`histograms`]: the samples and their statistics; [`report`] and [`plots`]: the outputs.
//! - [`chaos`], [`invariants`]: faults and the saga's books; [`compare`], [`procstat`]: the
//!   side-by-side runs and the CPU and memory of each process.

pub(crate) mod chaos;
mod compare;
mod histograms;
mod invariants;
mod plots;
mod procstat;
mod report;
mod scenario;
mod scheduler;
mod users;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

pub(crate) use report::Report;
use scenario::Scenario;
use scheduler::{Counters, Plan};
use users::{Product, Setup, User};

/// The endpoints that only read.
const READS: [&str; 4] = ["browse", "search", "product", "view_cart"];

/// How to load the shop (shared by `souk bench` and `souk chaos`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Load {
    /// The shop's gateway, e.g. `http://127.0.0.1:8080` (default: the shop running on --data-dir).
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// What the users do.
    #[arg(long, value_enum, default_value = "mixed")]
    pub(crate) scenario: Scenario,
    /// Requests per second, sent on schedule whatever the answers do.
    #[arg(long, default_value_t = 50.0)]
    pub(crate) rate: f64,
    /// How long the measured phase lasts: `30`, `30s`, `2m`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Virtual users, each signed in with a card on file before the measured phase.
    #[arg(long, default_value_t = 20)]
    pub(crate) users: usize,
    /// Requests in flight at most; beyond, a request waits for a slot (counted, reported).
    #[arg(long, default_value_t = 1024)]
    pub(crate) max_in_flight: usize,
    /// A request not answered within this is a timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Follow every n-th accepted order to its end.
    #[arg(long, default_value_t = 3)]
    pub(crate) follow_every: u64,
    /// Allow a target that is not on this machine.
    #[arg(long)]
    pub(crate) allow_remote: bool,
    /// An administrator of the shop, to put stock on sale before checkouts.
    #[arg(long, env = "SOUK_ADMIN_EMAIL")]
    pub(crate) admin_email: Option<String>,
    #[arg(long, env = "SOUK_ADMIN_PASSWORD", hide_env_values = true)]
    pub(crate) admin_password: Option<String>,
    /// The data dir of the running shop (to find its gateway when --target is not given).
    #[arg(long, default_value = ".souk")]
    pub(crate) data_dir: PathBuf,
}

/// `souk bench`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) load: Load,
    /// Where to write results.json and the plots.
    #[arg(long, default_value = "souk-bench-report")]
    pub(crate) report: PathBuf,
    /// Start the shop in both topologies and compare them (see `--rates`, `--rounds`).
    #[arg(long)]
    pub(crate) compare: bool,
    #[command(flatten)]
    pub(crate) compare_options: compare::Options,
}

/// Runs `souk bench`.
pub(crate) fn run(args: BenchArgs) -> std::process::ExitCode {
    if args.compare {
        return crate::up::run_to_end("souk bench --compare", compare::run(args));
    }
    crate::up::run_to_end("souk bench", async move {
        let base = target(&args.load)?;
        let fixture = Fixture::prepare(&args.load, &base).await?;
        let report = fixture.measure(&args.load, Instant::now(), true).await?.0;
        report.print();
        report.write(&args.report)?;
        println!("  report: {}", args.report.display());
        Ok(())
    })
}

/// Parses `30`, `30s`, `500ms`, `2m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit is ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

/// The base URL to load (`http://host:port`), refusing a remote one unless allowed.
pub(crate) fn target(load: &Load) -> Result<String, String> {
    let url = match &load.target {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let state = crate::state::State::read(&load.data_dir)?;
            format!("http://{}", state.gateway)
        }
    };
    let parsed = url::Url::parse(&url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !load.allow_remote {
        return Err(format!(
            "{host} is not this machine: load it only if it is yours, with --allow-remote"
        ));
    }
    if load.rate <= 0.0 || load.users == 0 {
        return Err("--rate and --users must be above 0".to_owned());
    }
    Ok(url)
}

/// The products and signed-in users of one shop, reused across runs against it.
#[derive(Debug)]
pub(crate) struct Fixture {
    base: String,
    products: Vec<Product>,
    words: Vec<String>,
    users: Vec<User>,
}

impl Fixture {
    /// Reads the products (putting stock on sale when an admin is given) and signs up the users.
    pub(crate) async fn prepare(load: &Load, base: &str) -> Result<Self, String> {
        let loopback_ipv4 = url::Url::parse(base)
            .ok()
            .and_then(|u| u.host_str().and_then(|h| h.parse::<IpAddr>().ok()))
            .is_some_and(|ip| ip.is_loopback() && ip.is_ipv4());
        let setup = Setup {
            base: base.to_owned(),
            spread_addresses: loopback_ipv4,
            admin: load.admin_email.clone().zip(load.admin_password.clone()),
        };
        if setup.admin.is_none() && matches!(load.scenario, Scenario::Checkout | Scenario::Mixed) {
            eprintln!(
                "souk bench: no administrator given (SOUK_ADMIN_EMAIL): no stock is put on sale, checkouts may be cancelled out of stock"
            );
        }
        let products = setup.products().await?;
        let mut words: Vec<String> = products
            .iter()
            .filter_map(|p| p.name.split_whitespace().next())
            .map(|w| {
                w.to_lowercase()
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect()
            })
            .filter(|w: &String| !w.is_empty())
            .collect();
        words.sort();
        words.dedup();
        if words.is_empty() {
            words.push("a".to_owned());
        }
        let spinner =
            ProgressBar::new_spinner().with_message(format!("signing up {} users", load.users));
        spinner.enable_steady_tick(Duration::from_millis(200));
        let run = format!("{:x}{:04x}", std::process::id(), fastrand::u16(..));
        let users = setup.users(load.users, &run).await;
        spinner.finish_and_clear();
        Ok(Self {
            base: base.to_owned(),
            products,
            words,
            users: users?,
        })
    }

    /// Runs the measured phase from `start` (which may be a moment ahead); the report and the raw
    /// samples (for windows and invariants).
    pub(crate) async fn measure(
        &self,
        load: &Load,
        start: Instant,
        progress: bool,
    ) -> Result<(Report, Arc<scenario::Shop>), String> {
        let client = reqwest::Client::builder()
            .timeout(load.timeout)
            .pool_max_idle_per_host(load.max_in_flight)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let shop = Arc::new(scenario::Shop {
            client,
            base: self.base.clone(),
            products: self.products.clone(),
            words: self.words.clone(),
            users: self.users.clone(),
            recorder: histograms::Recorder::default(),
            orders: users::Orders::default(),
            start,
            follow_every: load.follow_every,
            followers: std::sync::Mutex::new(Vec::new()),
        });
        let plan = Plan {
            rate: load.rate,
            duration: load.duration,
            max_in_flight: load.max_in_flight,
        };
        let counters = Arc::new(Counters::default());
        let bar = progress.then(|| progress_bar(&plan, &counters));
        let mut rng = fastrand::Rng::with_seed(0x50_0c);
        let scenario = load.scenario;
        let request_shop = Arc::clone(&shop);
        scheduler::run(plan, start, Arc::clone(&counters), move |i, due| {
            let action = scenario.pick(rng.u32(0..100));
            Arc::clone(&request_shop).perform(i, due, action)
        })
        .await;
        if let Some((bar, ticker)) = bar {
            ticker.abort();
            bar.finish_and_clear();
        }
        let followers = std::mem::take(&mut *shop.followers.lock().map_err(|e| e.to_string())?);
        futures::future::join_all(followers).await;
        let report = self.report(load, &plan, &counters, &shop);
        Ok((report, shop))
    }

    fn report(
        &self,
        load: &Load,
        plan: &Plan,
        counters: &Counters,
        shop: &scenario::Shop,
    ) -> Report {
        let samples = shop.recorder.samples();
        let all = histograms::by_endpoint(&samples, Duration::ZERO, Duration::MAX);
        let mut endpoints: std::collections::BTreeMap<String, histograms::Summary> = all
            .iter()
            .map(|(e, s)| ((*e).to_owned(), s.summary()))
            .collect();
        // The reads together, as the read target is stated.
        let mut reads = histograms::Stats::default();
        for read in READS {
            if let Some(stats) = all.get(read) {
                reads.merge(stats);
            }
        }
        if reads.requests > 0 {
            endpoints.insert("reads (all)".to_owned(), reads.summary());
        }
        let answers: Vec<_> = samples
            .iter()
            .filter(|s| s.endpoint != "order_confirmed")
            .copied()
            .collect();
        let followed = all.get("order_confirmed").map(|s| s.summary());
        let orders = report::OrdersSummary {
            accepted: shop.orders.all().len(),
            followed: followed.as_ref().map_or(0, |f| f.requests),
            confirmed: followed.as_ref().map_or(0, |f| f.ok),
            cancelled: followed
                .as_ref()
                .and_then(|f| f.errors.get("4xx").copied())
                .unwrap_or(0),
            unfinished: followed
                .as_ref()
                .and_then(|f| f.errors.get("timeout").copied())
                .unwrap_or(0),
        };
        let seconds = plan.duration.as_secs_f64().max(0.001);
        let mut report = Report {
            target: self.base.clone(),
            scenario: format!("{:?}", load.scenario).to_lowercase(),
            users: self.users.len(),
            duration_s: seconds,
            intended_rate: plan.rate,
            achieved_rate: answers.len() as f64 / seconds,
            sent: counters.sent.load(Ordering::Relaxed),
            max_in_flight: plan.max_in_flight,
            in_flight_limit_hits: counters.limit_hits.load(Ordering::Relaxed),
            max_send_lag_ms: counters.max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0,
            machine: report::Machine::now(),
            endpoints,
            timeline: report::timeline(&samples),
            distribution: report::distribution(&samples),
            throughput: report::throughput(&answers),
            orders,
            meets_targets: false,
        };
        report.meets_targets = report::meets_targets(&report.endpoints);
        report
    }
}

/// A progress bar fed from the counters four times a second.
fn progress_bar(
    plan: &Plan,
    counters: &Arc<Counters>,
) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = ProgressBar::new(plan.total());
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed:>4} [{wide_bar}] {pos}/{len} sent  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let (shown, counters) = (bar.clone(), Arc::clone(counters));
    let max = plan.max_in_flight;
    let ticker = tokio::spawn(async move {
        let mut warned = false;
        loop {
            let sent = counters.sent.load(Ordering::Relaxed);
            let done = counters.done.load(Ordering::Relaxed);
            let hits = counters.limit_hits.load(Ordering::Relaxed);
            shown.set_position(sent);
            shown.set_message(format!(
                "{done} answered, {} in flight",
                sent - done.min(sent)
            ));
            if hits > 0 && !warned {
                shown.println(format!(
                    "souk bench: all {max} in-flight slots are taken: requests now wait for a slot (the wait counts in their latency)"
                ));
                warned = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    (bar, ticker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("soon").is_err());
    }

    fn load(target: &str, allow_remote: bool) -> Load {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            load: Load,
        }
        let mut args = vec!["souk", "--target", target];
        if allow_remote {
            args.push("--allow-remote");
        }
        Wrapper::parse_from(args).load
    }

    #[test]
    fn remote_targets_are_refused_unless_allowed() {
        assert!(target(&load("http://127.0.0.1:8080", false)).is_ok());
        assert!(target(&load("http://localhost:8080/", false)).is_ok());
        assert!(target(&load("http://[::1]:8080", false)).is_ok());
        assert!(target(&load("http://shop.example.com", false)).is_err());
        assert!(target(&load("http://10.0.0.5:8080", false)).is_err());
        assert!(target(&load("http://10.0.0.5:8080", true)).is_ok());
    }
}
