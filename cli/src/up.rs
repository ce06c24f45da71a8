//! `souk up`: the shop on this machine.
//!
//! Until the gateway exists, this serves the catalog alone, directly on the given port, with its
//! data under the data directory. It says so when it starts.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use souk_chassis::{DatabaseConfig, Env, Shutdown};

/// Serves what exists of the shop on `127.0.0.1:port`, keeping data under `data_dir`.
pub(crate) fn run(data_dir: &Path, port: u16) -> ExitCode {
    let data_dir = data_dir.to_path_buf();
    souk_chassis::server::run_main("up", move |env: Env| async move {
        let mut config = souk_catalog::load_config(&env)?;
        config.listen = SocketAddr::from(([127, 0, 0, 1], port));
        config.database =
            DatabaseConfig::with_url(format!("sqlite://{}/catalog.db", data_dir.display()));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| souk_catalog::StartError::Bind {
                addr: config.listen,
                source,
            })?;
        println!(
            "souk is early: the gateway and the other services are not built yet, so `souk up` serves the catalog alone."
        );
        println!("  products:   http://{}/v1/products", config.listen);
        println!(
            "  search:     http://{}/v1/products?q=wireless",
            config.listen
        );
        println!("  categories: http://{}/v1/categories", config.listen);
        println!("  OpenAPI:    http://{}/openapi.json", config.listen);
        println!("  data:       {}/catalog.db", data_dir.display());
        println!("Press Ctrl-C to stop.");
        souk_catalog::run(
            &config,
            listener,
            Shutdown::on_os_signals(config.http.drain_timeout()),
        )
        .await
    })
}
