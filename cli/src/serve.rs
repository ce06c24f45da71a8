//! `souk serve <service>`: one service in this process, exactly as its own binary runs it.

use std::process::ExitCode;

/// The services `souk` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Service {
    /// Products, categories, prices and search.
    Catalog,
}

/// Runs `service` until SIGTERM or Ctrl-C.
pub(crate) fn run(service: Service) -> ExitCode {
    match service {
        Service::Catalog => souk_chassis::server::run_main(souk_catalog::NAME, |env| async move {
            souk_catalog::serve_from_env(&env).await
        }),
    }
}
