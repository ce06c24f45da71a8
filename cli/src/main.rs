//! `souk`: the command at the top of the house. It runs the shop's services; none of them know it.

mod bench;
mod gateway_config;
mod monolith;
mod serve;
mod services;
mod state;
mod status;
mod trace;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// souk: an e-commerce shop built as independent services behind one gateway.
#[derive(Debug, Parser)]
#[command(name = "souk", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole shop: every service as its own process, behind the gateway, supervised.
    Up {
        /// Where the services keep their data (SQLite files, logs, generated config).
        #[arg(long, default_value = ".souk")]
        data_dir: PathBuf,
        /// The gateway's port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Run several instances of a service, e.g. `--instances catalog=3` (repeatable).
        #[arg(long = "instances", value_name = "SERVICE=N")]
        instances: Vec<String>,
        /// `embedded` (SQLite per service) or `postgres` (a database per service on SOUK_POSTGRES_URL).
        #[arg(long, value_enum, default_value = "embedded")]
        backend: up::Backend,
        /// Send each process's log to <data dir>/logs/<name>.log instead of this terminal.
        #[arg(long)]
        quiet: bool,
        /// Multiply every rate limit (rate and burst) by this: for load and contract-test runs
        /// that come from one address, never for a shop open to the internet.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        rate_limit_factor: u32,
        /// Collect no traces: no receiver, and no process exports spans (unless
        /// OTEL_EXPORTER_OTLP_ENDPOINT points them at a collector of your own).
        #[arg(long)]
        no_traces: bool,
    },
    /// Run the same shop as ONE process: every service's router called in-process by the gateway.
    Monolith {
        /// Where the services keep their data (the same layout as `souk up`).
        #[arg(long, default_value = ".souk")]
        data_dir: PathBuf,
        /// The gateway's port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// `embedded` (SQLite per service) or `postgres` (a database per service on SOUK_POSTGRES_URL).
        #[arg(long, value_enum, default_value = "embedded")]
        backend: up::Backend,
        /// No access log on stdout.
        #[arg(long)]
        quiet: bool,
        /// Multiply every rate limit (rate and burst) by this: for load and contract-test runs
        /// that come from one address, never for a shop open to the internet.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        rate_limit_factor: u32,
        /// Collect no traces: no receiver, and no process exports spans (unless
        /// OTEL_EXPORTER_OTLP_ENDPOINT points them at a collector of your own).
        #[arg(long)]
        no_traces: bool,
    },
    /// Show each service's instances, health and breaker state (from the gateway of a running `souk up`).
    Status {
        /// The data dir of the running `souk up`.
        #[arg(long, default_value = ".souk")]
        data_dir: PathBuf,
    },
    /// Draw a trace the gateway of a running `souk up` collected as a waterfall, or list the
    /// recent traces.
    Trace {
        /// The trace's id (32 hex digits, as `souk trace` lists them); without it, the recent
        /// traces are listed.
        #[arg(value_name = "TRACE_ID")]
        trace_id: Option<String>,
        /// List the recent traces (what giving no id does).
        #[arg(long, conflicts_with = "trace_id")]
        list: bool,
        /// The data dir of the running `souk up`.
        #[arg(long, default_value = ".souk")]
        data_dir: PathBuf,
    },
    /// Change how many instances a service runs, while the shop runs: `souk scale catalog=2`.
    Scale {
        /// SERVICE=N.
        #[arg(value_name = "SERVICE=N")]
        target: String,
        /// The data dir of the running `souk up`.
        #[arg(long, default_value = ".souk")]
        data_dir: PathBuf,
    },
    /// Load a running shop at a fixed arrival rate and report latency per endpoint (or, with
    /// --compare, start both topologies and compare them).
    Bench(Box<bench::BenchArgs>),
    /// Break a service of a running `souk up` during a bench run and report the blast radius.
    Chaos(Box<bench::chaos::ChaosArgs>),
    /// Print the gateway configuration of a deployment, generated from the registry of services
    /// (`deploy/compose/gateway.toml`, `deploy/k8s/base/gateway.toml` are this, committed).
    GatewayConfig {
        /// Which deployment.
        #[arg(long, value_enum)]
        target: gateway_config::Target,
    },
    /// Run one service (what `souk up` spawns, and what each service's own binary does).
    Serve(serve::Target),
}

fn main() -> ExitCode {
    souk_chassis::tune_allocator();
    match Cli::parse().command {
        Command::Serve(target) => serve::run(target),
        Command::GatewayConfig { target } => match gateway_config::rendered_for(target) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("souk gateway-config: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Up {
            data_dir,
            port,
            instances,
            backend,
            quiet,
            rate_limit_factor,
            no_traces,
        } => {
            let instances = match instances
                .iter()
                .map(|i| parse_count(i))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(instances) => instances,
                Err(message) => {
                    eprintln!("souk up: {message}");
                    return ExitCode::from(2);
                }
            };
            up::run(up::Options {
                data_dir,
                port,
                instances,
                backend,
                quiet,
                rate_limit_factor,
                traces: !no_traces,
            })
        }
        Command::Monolith {
            data_dir,
            port,
            backend,
            quiet,
            rate_limit_factor,
            no_traces,
        } => {
            let mut options = monolith::options(data_dir, port, backend, quiet);
            options.rate_limit_factor = rate_limit_factor;
            options.traces = !no_traces;
            monolith::run(options)
        }
        Command::Status { data_dir } => status::status(&data_dir),
        // `--list` is what no id does; clap refuses it beside an id.
        Command::Trace {
            trace_id, data_dir, ..
        } => trace::trace(&data_dir, trace_id.as_deref()),
        Command::Bench(args) => bench::run(*args),
        Command::Chaos(args) => bench::chaos::run(*args),
        Command::Scale { target, data_dir } => match parse_count(&target) {
            Ok((service, count)) => status::scale(&data_dir, service.name(), count),
            Err(message) => {
                eprintln!("souk scale: {message}");
                ExitCode::from(2)
            }
        },
    }
}

/// Parses `SERVICE=N`.
fn parse_count(text: &str) -> Result<(services::Service, usize), String> {
    let (name, count) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not SERVICE=N (e.g. catalog=3)"))?;
    let service = services::Service::parse(name)
        .ok_or_else(|| format!("no service named {name:?}: {}", status::names()))?;
    let count = count
        .parse()
        .map_err(|_| format!("{count:?} is not a number of instances"))?;
    Ok((service, count))
}
