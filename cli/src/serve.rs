//! `souk serve <service>`: one service in this process, exactly as its own binary runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::services::Service;

/// What `souk serve` can run: a service of the registry, or the gateway with its configuration.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The service, or `gateway`.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(names()))]
    name: String,
    /// The gateway's TOML configuration (see services/gateway/examples/gateway.toml).
    #[arg(long, required_if_eq("name", "gateway"))]
    config: Option<PathBuf>,
}

fn names() -> Vec<clap::builder::PossibleValue> {
    let services = Service::ALL.iter().map(|s| (s.name(), s.about()));
    services
        .chain([("gateway", "The API gateway (with --config)")])
        .map(|(name, about)| clap::builder::PossibleValue::new(name).help(about))
        .collect()
}

/// Runs `target` until SIGTERM or Ctrl-C.
pub(crate) fn run(target: Target) -> ExitCode {
    match (Service::parse(&target.name), target.config) {
        (Some(service), _) => service.serve(),
        (None, Some(config)) => serve_gateway(config),
        (None, None) => {
            eprintln!("souk serve gateway: --config names its configuration file");
            ExitCode::FAILURE
        }
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
        #[command(flatten)]
        target: super::Target,
    }

    #[test]
    fn every_service_can_be_served_and_nothing_else() {
        for service in crate::services::Service::ALL {
            let parsed = Serve::try_parse_from(["serve", service.name()]);
            assert!(parsed.is_ok(), "souk serve {}", service.name());
        }
        assert!(Serve::try_parse_from(["serve", "gateway", "--config", "g.toml"]).is_ok());
        assert!(
            Serve::try_parse_from(["serve", "gateway"]).is_err(),
            "the gateway needs --config"
        );
        assert!(Serve::try_parse_from(["serve", "reviews"]).is_err());
    }
}
