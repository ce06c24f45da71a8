//! `souk`: the command at the top of the house. It runs the shop's services; none of them know it.

mod serve;
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
    /// Run the shop on this machine (today: the catalog, until the gateway lands).
    Up {
        /// Where each service keeps its SQLite database.
        #[arg(long, default_value = ".souk")]
        data_dir: PathBuf,
        /// Port to serve on, on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Run one service, configured by `SOUK_<SERVICE>__*` variables and the `SOUK_CONFIG` file.
    Serve {
        /// Which service.
        service: serve::Service,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { service } => serve::run(service),
        Command::Up { data_dir, port } => up::run(&data_dir, port),
    }
}
