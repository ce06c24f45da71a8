//! The gateway's binary.
//!
//! ```text
//! souk-gateway --config gateway.toml        serve
//! souk-gateway --check-config gateway.toml  validate and exit (0 valid, 1 not)
//! ```
//!
//! `SOUK_GATEWAY_ADMIN_TOKEN`, when set, is the admin API's bearer token (else
//! `server.admin_token_file`).

use std::path::PathBuf;
use std::process::ExitCode;

use souk_chassis::Shutdown;
use souk_gateway::GatewayConfig;

// The allocator is mimalloc, declared by the chassis for every binary built on it.

fn main() -> ExitCode {
    souk_chassis::tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (check_only, path) = match args.as_slice() {
        [flag, path] if flag == "--config" => (false, PathBuf::from(path)),
        [flag, path] if flag == "--check-config" => (true, PathBuf::from(path)),
        _ => {
            eprintln!("usage: souk-gateway --config FILE | --check-config FILE");
            return ExitCode::from(2);
        }
    };
    let mut config = match GatewayConfig::load(&path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("souk-gateway: {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if check_only {
        println!(
            "{}: valid ({} routes, {} upstreams)",
            path.display(),
            config.routes.len(),
            config.upstreams.len()
        );
        return ExitCode::SUCCESS;
    }
    souk_chassis::server::run_main(souk_gateway::NAME, move |env| async move {
        if let Some(token) = env.get(souk_gateway::ADMIN_TOKEN_VAR) {
            config.server.admin_token = souk_chassis::Secret::new(token);
        }
        let shutdown = Shutdown::on_os_signals(std::time::Duration::from_millis(
            config.server.drain_timeout_ms,
        ));
        let running = souk_gateway::start(config, Some(path), shutdown)?;
        tokio::task::spawn_blocking(move || running.join())
            .await
            .map_err(|e| souk_gateway::StartError::Thread(std::io::Error::other(e)))?;
        Ok::<(), souk_gateway::StartError>(())
    })
}
