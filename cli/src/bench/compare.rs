//! `souk bench --compare`: the same shop in both topologies — `souk monolith` (one process) and
//! `souk up` (a process per service) — started here on random ports and fresh data dirs (so on
//! the same bundled seed data), loaded with the same scenario at a ladder of rates, interleaved
//! (monolith, microservices, monolith, microservices …) so that the machine's other work falls
//! on both alike, and reported side by side with medians over the rounds: the highest rate
//! meeting the latency targets, p50 and p99 per endpoint, CPU and memory per process. Then a
//! scaling run: the microservices with catalog at 1, 2, 3 … instances.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::histograms::Summary;
use super::procstat::{self, Snapshot, Usage};
use super::report::{self, Machine};
use super::scenario::Scenario;
use super::{BenchArgs, Fixture, Load};
use crate::state::State;

/// The options of `--compare`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// With --compare: the arrival rates tried, requests per second.
    #[arg(long, value_delimiter = ',', default_value = "25,50,100,200")]
    pub(crate) rates: Vec<f64>,
    /// With --compare: runs per rate and topology, interleaved; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// With --compare: catalog instance counts of the scaling run (`0`: no scaling run).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub(crate) catalog_instances: Vec<usize>,
    /// With --compare: the scenario of the scaling run.
    #[arg(long, value_enum, default_value = "browse")]
    pub(crate) scaling_scenario: Scenario,
    /// With --compare: after the listed rates, each topology climbs on from the highest rate it
    /// met, this many percent higher each step, until a step misses the targets.
    #[arg(long, value_name = "PERCENT")]
    pub(crate) climb: Option<f64>,
    /// With --compare: run both shops collecting traces (as `souk up` does by default); without
    /// it they run with `--no-traces`, so what is measured is the shop alone.
    #[arg(long)]
    pub(crate) traces: bool,
}

/// Steps a climb takes at most per topology.
const CLIMB_STEPS: usize = 40;

/// compare.json.
#[derive(Debug, Serialize)]
struct Comparison {
    machine: Machine,
    scenario: Scenario,
    duration_s: f64,
    users: usize,
    rounds: usize,
    points: Vec<Point>,
    /// The highest rate meeting the targets, per topology.
    at_target: BTreeMap<String, Option<f64>>,
    /// Microservices' throughput at target over the monolith's.
    ratio: Option<f64>,
    scaling_scenario: Scenario,
    scaling: Vec<Point>,
    scaling_at_target: BTreeMap<String, Option<f64>>,
}

/// One topology at one rate: every round, and their medians.
#[derive(Debug, Serialize)]
struct Point {
    topology: String,
    rate: f64,
    rounds: Vec<Round>,
    achieved_rate: f64,
    p50_ms: BTreeMap<String, f64>,
    p99_ms: BTreeMap<String, f64>,
    /// Errors over requests, all rounds.
    error_share: f64,
    /// Median CPU and memory per process.
    usage: BTreeMap<String, Usage>,
    meets_targets: bool,
}

#[derive(Debug, Serialize)]
struct Round {
    achieved_rate: f64,
    endpoints: BTreeMap<String, Summary>,
    usage: BTreeMap<String, Usage>,
}

/// A shop started for the comparison.
#[derive(Debug)]
struct Started {
    topology: &'static str,
    child: tokio::process::Child,
    state: State,
    fixture: Option<Fixture>,
}

const ADMIN_EMAIL: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "a long benchmark admin passphrase";

pub(crate) async fn run(args: BenchArgs) -> Result<(), String> {
    let work = tempfile::tempdir().map_err(|e| format!("cannot make a temporary dir: {e}"))?;
    let mut load = args.load.clone();
    load.admin_email = Some(ADMIN_EMAIL.to_owned());
    load.admin_password = Some(ADMIN_PASSWORD.to_owned());
    let mut shops = Vec::new();
    for topology in ["monolith", "up"] {
        println!("starting souk {topology} …");
        shops.push(start(topology, work.path(), args.compare_options.traces).await?);
    }
    let result = compare(&args, &load, &mut shops).await;
    for shop in &mut shops {
        stop(shop).await;
    }
    let comparison = result?;
    write(&comparison, &args.report)?;
    println!("{}", markdown(&comparison));
    println!("  report: {}", args.report.display());
    Ok(())
}

async fn compare(
    args: &BenchArgs,
    load: &Load,
    shops: &mut [Started],
) -> Result<Comparison, String> {
    let options = &args.compare_options;
    for shop in shops.iter_mut() {
        let base = format!("http://{}", shop.state.gateway);
        println!(
            "signing up {} users on souk {} …",
            load.users, shop.topology
        );
        shop.fixture = Some(Fixture::prepare(load, &base).await?);
        // A short warm-up: connections, caches, the first requests' lazy work.
        let mut warm = load.clone();
        warm.duration = Duration::from_secs(3);
        warm.rate = options.rates.first().copied().unwrap_or(10.0);
        measure(shop, &warm).await?;
    }
    let mut points = Vec::new();
    for &rate in &options.rates {
        let rates = shops.iter().map(|shop| (shop.topology, rate)).collect();
        points.extend(interleaved(&rates, options.rounds, load, shops).await?);
    }
    if let Some(percent) = options.climb.filter(|p| *p > 0.0) {
        climb(&mut points, percent, options.rounds, load, shops).await?;
    }
    let at_target = at_target_of(&points);
    let ratio = match (at_target.get(&name("up")), at_target.get(&name("monolith"))) {
        (Some(Some(up)), Some(Some(monolith))) => Some(up / monolith),
        _ => None,
    };
    let scaling = scaling(options, load, shops).await?;
    let scaling_at_target = at_target_of(&scaling);
    Ok(Comparison {
        machine: Machine::now(),
        scenario: load.scenario,
        duration_s: load.duration.as_secs_f64(),
        users: load.users,
        rounds: options.rounds,
        points,
        at_target,
        ratio,
        scaling_scenario: options.scaling_scenario,
        scaling_at_target,
        scaling,
    })
}

/// Each shop named in `rates` at its rate, `rounds` times, interleaved (one round of every shop,
/// then the next), and a point per shop of their medians.
async fn interleaved(
    rates: &BTreeMap<&str, f64>,
    rounds: usize,
    load: &Load,
    shops: &[Started],
) -> Result<Vec<Point>, String> {
    let mut measured: BTreeMap<&str, Vec<Round>> = BTreeMap::new();
    for round in 0..rounds.max(1) {
        for shop in shops {
            let Some(&rate) = rates.get(shop.topology) else {
                continue;
            };
            println!(
                "{} at {rate}/s, round {} of {rounds}",
                shop.topology,
                round + 1
            );
            let mut at_rate = load.clone();
            at_rate.rate = rate;
            measured
                .entry(shop.topology)
                .or_default()
                .push(measure(shop, &at_rate).await?);
        }
    }
    Ok(measured
        .into_iter()
        .map(|(topology, rounds)| Point::new(name(topology), rates[topology], rounds))
        .collect())
}

/// Climbs each topology from the highest rate it met, `percent` higher a step, until a step
/// misses the targets; the topologies still climbing run their rounds interleaved, as the
/// listed rates do. A topology that met none of the listed rates does not climb.
async fn climb(
    points: &mut Vec<Point>,
    percent: f64,
    rounds: usize,
    load: &Load,
    shops: &[Started],
) -> Result<(), String> {
    let met = at_target_of(points);
    let mut climbing: BTreeMap<&str, f64> = shops
        .iter()
        .filter_map(|shop| Some((shop.topology, met.get(&name(shop.topology)).copied()??)))
        .collect();
    for _ in 0..CLIMB_STEPS {
        if climbing.is_empty() {
            break;
        }
        for last in climbing.values_mut() {
            *last = (*last * (1.0 + percent / 100.0)).round();
        }
        for point in interleaved(&climbing, rounds, load, shops).await? {
            if !point.meets_targets {
                climbing.retain(|topology, _| name(topology) != point.topology);
            }
            points.push(point);
        }
    }
    Ok(())
}

/// The microservices with catalog at each instance count, on the scaling scenario.
async fn scaling(options: &Options, load: &Load, shops: &[Started]) -> Result<Vec<Point>, String> {
    let Some(up) = shops.iter().find(|s| s.topology == "up") else {
        return Ok(Vec::new());
    };
    let mut points = Vec::new();
    for &count in options.catalog_instances.iter().filter(|c| **c > 0) {
        scale(&up.state, count).await?;
        for &rate in &options.rates {
            let mut rounds = Vec::new();
            for round in 0..options.rounds.max(1) {
                println!(
                    "catalog ×{count} at {rate}/s, round {} of {}",
                    round + 1,
                    options.rounds
                );
                let mut at_rate = load.clone();
                at_rate.rate = rate;
                at_rate.scenario = options.scaling_scenario;
                rounds.push(measure(up, &at_rate).await?);
            }
            points.push(Point::new(format!("catalog ×{count}"), rate, rounds));
        }
    }
    Ok(points)
}

fn name(topology: &str) -> String {
    match topology {
        "up" => "microservices".to_owned(),
        other => other.to_owned(),
    }
}

/// One measured run of a shop, with its processes' CPU and memory.
async fn measure(shop: &Started, load: &Load) -> Result<Round, String> {
    let fixture = shop.fixture.as_ref().ok_or("the shop was not prepared")?;
    let processes = processes(shop).await?;
    let before = Snapshot::take(&processes);
    let started = Instant::now();
    let (report, _) = fixture.measure(load, Instant::now(), true).await?;
    let usage = procstat::usage(&before, &Snapshot::take(&processes), started.elapsed());
    // Let the last checkouts' sagas finish before the other shop is measured.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Round {
        achieved_rate: report.achieved_rate,
        endpoints: report.endpoints,
        usage,
    })
}

/// The shop's processes (and this one, the load generator), labelled.
async fn processes(shop: &Started) -> Result<Vec<(String, u32)>, String> {
    let mut out = vec![(procstat::GENERATOR.to_owned(), std::process::id())];
    let Some(control) = shop.state.control else {
        out.push(("monolith".to_owned(), shop.state.pid));
        return Ok(out);
    };
    out.push(("supervisor".to_owned(), shop.state.pid));
    let listed: Vec<Value> = shop
        .state
        .client(Duration::from_secs(5))?
        .get(format!("http://{control}/processes"))
        .send()
        .await
        .map_err(|e| format!("cannot reach souk up's control API: {e}"))?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    for p in listed {
        if let (Some(label), Some(pid)) = (p["label"].as_str(), p["pid"].as_u64()) {
            out.push((label.to_owned(), u32::try_from(pid).unwrap_or(0)));
        }
    }
    Ok(out)
}

async fn scale(state: &State, count: usize) -> Result<(), String> {
    let control = state.control.ok_or("no control API")?;
    let client = state.client(Duration::from_secs(120))?;
    let response = client
        .put(format!("http://{control}/services/catalog/instances"))
        .json(&serde_json::json!({ "count": count }))
        .send()
        .await
        .map_err(|e| format!("cannot scale catalog: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("scaling catalog to {count}: {}", response.status()));
    }
    // The gateway's health checks take the new instances in.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

impl Point {
    fn new(topology: String, rate: f64, rounds: Vec<Round>) -> Self {
        let endpoints: std::collections::BTreeSet<String> = rounds
            .iter()
            .flat_map(|r| r.endpoints.keys().cloned())
            .collect();
        let of = |e: &str, f: fn(&Summary) -> f64| {
            median(
                rounds
                    .iter()
                    .filter_map(|r| r.endpoints.get(e))
                    .map(f)
                    .collect(),
            )
        };
        let p50_ms: BTreeMap<String, f64> = endpoints
            .iter()
            .map(|e| (e.clone(), of(e, |s| s.p50_ms)))
            .collect();
        let p99_ms: BTreeMap<String, f64> = endpoints
            .iter()
            .map(|e| (e.clone(), of(e, |s| s.p99_ms)))
            .collect();
        let (errors, requests) = rounds
            .iter()
            .flat_map(|r| r.endpoints.iter())
            .filter(|(e, _)| report::target_ms(e).is_some() && *e != "reads (all)")
            .fold((0, 0), |(e, n), (_, s)| {
                (e + s.errors.values().sum::<u64>(), n + s.requests)
            });
        let error_share = errors as f64 / requests.max(1) as f64;
        let achieved_rate = median(rounds.iter().map(|r| r.achieved_rate).collect());
        let labels: std::collections::BTreeSet<String> = rounds
            .iter()
            .flat_map(|r| r.usage.keys().cloned())
            .collect();
        let usage = labels
            .into_iter()
            .map(|l| {
                let cpu = median(
                    rounds
                        .iter()
                        .filter_map(|r| r.usage.get(&l))
                        .map(|u| u.cpu_percent)
                        .collect(),
                );
                let of = |f: fn(&Usage) -> f64| {
                    median(
                        rounds
                            .iter()
                            .filter_map(|r| r.usage.get(&l))
                            .map(f)
                            .collect(),
                    )
                };
                (
                    l.clone(),
                    Usage {
                        cpu_percent: cpu,
                        rss_mib: of(|u| u.rss_mib),
                        pss_mib: of(|u| u.pss_mib),
                    },
                )
            })
            .collect();
        let within = p99_ms
            .iter()
            .all(|(e, p99)| report::target_ms(e).is_none_or(|t| *p99 <= t));
        Self {
            meets_targets: within && error_share < 0.001 && achieved_rate >= 0.95 * rate,
            topology,
            rate,
            rounds,
            achieved_rate,
            p50_ms,
            p99_ms,
            error_share,
            usage,
        }
    }
}

/// Per topology, the highest rate whose medians met the targets.
fn at_target_of(points: &[Point]) -> BTreeMap<String, Option<f64>> {
    let mut out: BTreeMap<String, Option<f64>> = BTreeMap::new();
    for p in points {
        let best = out.entry(p.topology.clone()).or_default();
        if p.meets_targets && best.is_none_or(|b| p.rate > b) {
            *best = Some(p.rate);
        }
    }
    out
}

async fn start(topology: &'static str, work: &Path, traces: bool) -> Result<Started, String> {
    let data_dir = work.join(topology);
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
    let log =
        std::fs::File::create(work.join(format!("{topology}.log"))).map_err(|e| e.to_string())?;
    let port = crate::up::free_port()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = tokio::process::Command::new(exe)
        .args([
            topology,
            "--quiet",
            "--port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(&data_dir)
        .args((!traces).then_some("--no-traces"))
        .env("SOUK_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("SOUK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("SOUK_LOG", "warn")
        .env_remove("SOUK_POSTGRES_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start souk {topology}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(state) = State::read(&data_dir) {
            return Ok(Started {
                topology,
                child,
                state,
                fixture: None,
            });
        }
        if Instant::now() > deadline {
            return Err(format!(
                "souk {topology} did not start within 120 s: see {}",
                work.join(format!("{topology}.log")).display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM, then up to 30 s for it to stop (kill_on_drop covers the rest).
async fn stop(shop: &mut Started) {
    if let Some(pid) = shop.child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), shop.child.wait()).await;
}

fn write(comparison: &Comparison, dir: &PathBuf) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(comparison).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("compare.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("compare.md"), markdown(comparison)).map_err(|e| e.to_string())?;
    let mut series = worst_p99_by_rate(&comparison.points);
    series.extend(worst_p99_by_rate(&comparison.scaling));
    super::plots::p99_by_rate(&series, &dir.join("p99-by-rate.svg"))
}

fn markdown(c: &Comparison) -> String {
    let mut out = format!(
        "## Monolith against microservices: {:?}, {} s per run, {} users, {} interleaved rounds (medians)\n\nMachine: {} cores, load average {}.\n\n",
        c.scenario, c.duration_s, c.users, c.rounds, c.machine.cores, c.machine.load_average
    );
    let rate = |r: Option<&Option<f64>>| {
        r.copied()
            .flatten()
            .map_or("none of the rates tried".to_owned(), |r| format!("{r}/s"))
    };
    out.push_str(&format!(
        "Highest rate meeting the targets (p99 < {} ms for reads and cart, < {} ms for checkout acceptance, < 0.1 % errors, ≥ 95 % of the rate achieved): monolith {}, microservices {}{}.\n\n",
        report::READ_TARGET_MS,
        report::CHECKOUT_TARGET_MS,
        rate(c.at_target.get("monolith")),
        rate(c.at_target.get("microservices")),
        c.ratio.map_or(String::new(), |r| format!(" ({:.0} % of the monolith's)", r * 100.0))
    ));
    points_table(&mut out, &c.points);
    if !c.scaling.is_empty() {
        out.push_str(&format!(
            "\n### Scaling: catalog instances, {:?} scenario\n\n",
            c.scaling_scenario
        ));
        let best: Vec<String> = c
            .scaling_at_target
            .iter()
            .map(|(t, r)| format!("{t}: {}", rate(Some(r))))
            .collect();
        out.push_str(&format!(
            "Highest rate meeting the targets: {}.\n\n",
            best.join("; ")
        ));
        points_table(&mut out, &c.scaling);
    }
    out
}

fn points_table(out: &mut String, points: &[Point]) {
    out.push_str("| topology | rate/s | achieved/s | targets | errors | p50 / p99 ms per endpoint | CPU % of a core: shop (load generator) | RSS (PSS) MiB: shop |\n|---|---|---|---|---|---|---|---|\n");
    for p in points {
        let latencies: Vec<String> = p
            .p99_ms
            .iter()
            .map(|(e, p99)| {
                format!(
                    "{e} {:.1}/{p99:.1}",
                    p.p50_ms.get(e).copied().unwrap_or(0.0)
                )
            })
            .collect();
        let total = p.usage.get("total").cloned().unwrap_or(Usage {
            cpu_percent: 0.0,
            rss_mib: 0.0,
            pss_mib: 0.0,
        });
        let generator = p
            .usage
            .get(procstat::GENERATOR)
            .map_or(0.0, |u| u.cpu_percent);
        out.push_str(&format!(
            "| {} | {} | {:.1} | {} | {:.2} % | {} | {:.0} ({:.0}) | {:.0} ({:.0}) |\n",
            p.topology,
            p.rate,
            p.achieved_rate,
            if p.meets_targets { "met" } else { "missed" },
            p.error_share * 100.0,
            latencies.join(", "),
            total.cpu_percent,
            generator,
            total.rss_mib,
            total.pss_mib,
        ));
    }
    out.push_str("\nPer process (median CPU % of one core, RSS MiB, PSS MiB; `total` is the shop's), at the highest rate:\n\n");
    let Some(top) = points.iter().map(|p| p.rate).max_by(f64::total_cmp) else {
        return;
    };
    for p in points.iter().filter(|p| p.rate == top) {
        let each: Vec<String> = p
            .usage
            .iter()
            .map(|(l, u)| {
                format!(
                    "{l} {:.0} % / {:.0} MiB / {:.0} MiB",
                    u.cpu_percent, u.rss_mib, u.pss_mib
                )
            })
            .collect();
        out.push_str(&format!("- {}: {}\n", p.topology, each.join(", ")));
    }
}

/// Per series (topology, or catalog instances): (rate, the worst p99 of the interactive
/// endpoints), for the plot.
fn worst_p99_by_rate(points: &[Point]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for p in points {
        let worst = p
            .p99_ms
            .iter()
            .filter(|(e, _)| report::target_ms(e) == Some(report::READ_TARGET_MS))
            .map(|(_, p)| *p)
            .fold(0.0, f64::max);
        out.entry(p.topology.clone())
            .or_default()
            .push((p.rate, worst));
    }
    out
}
