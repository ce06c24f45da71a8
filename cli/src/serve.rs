//! `souk serve <service>`: one service in this process, exactly as its own binary runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::services::{self, Service};

/// What `souk serve` can run: a service, or the gateway with its configuration file.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Target {
    /// Accounts, sign-in, signing keys.
    Identity,
    /// Products, categories, prices and search.
    Catalog,
    /// Stock per product and reservations per order.
    Inventory,
    /// One cart per shopper.
    Cart,
    /// Cards, payments per order, refunds.
    Payments,
    /// Checkout: orders and their saga.
    Orders,
    /// Purchase history.
    History,
    /// The web shop.
    Storefront,
    /// The API gateway.
    Gateway {
        /// Its TOML configuration (see services/gateway/examples/gateway.toml).
        #[arg(long)]
        config: PathBuf,
    },
}

/// Runs `target` until SIGTERM or Ctrl-C.
pub(crate) fn run(target: Target) -> ExitCode {
    match target {
        Target::Identity => services::serve(Service::Identity),
        Target::Catalog => services::serve(Service::Catalog),
        Target::Inventory => services::serve(Service::Inventory),
        Target::Cart => services::serve(Service::Cart),
        Target::Payments => services::serve(Service::Payments),
        Target::Orders => services::serve(Service::Orders),
        Target::History => services::serve(Service::History),
        Target::Storefront => services::serve(Service::Storefront),
        Target::Gateway { config } => serve_gateway(config),
    }
}

fn serve_gateway(path: PathBuf) -> ExitCode {
    let mut config = match souk_gateway::GatewayConfig::load(&path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("souk serve gateway: {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    };
    souk_chassis::server::run_main(souk_gateway::NAME, move |env| async move {
        if let Some(token) = env.get(souk_gateway::ADMIN_TOKEN_VAR) {
            config.server.admin_token = souk_chassis::Secret::new(token);
        }
        let drain = std::time::Duration::from_millis(config.server.drain_timeout_ms);
        let running = souk_gateway::start(
            config,
            Some(path),
            souk_chassis::Shutdown::on_os_signals(drain),
        )?;
        tokio::task::spawn_blocking(move || running.join())
            .await
            .map_err(|e| souk_gateway::StartError::Thread(std::io::Error::other(e)))
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Serve {
        #[command(subcommand)]
        target: super::Target,
    }

    #[test]
    fn every_service_can_be_served() {
        for service in crate::services::Service::ALL {
            let parsed = Serve::try_parse_from(["serve", service.name()]);
            assert!(parsed.is_ok(), "souk serve {}", service.name());
        }
    }
}
