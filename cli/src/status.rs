//! `souk status` and `souk scale`: what a running `souk up` is doing, and changing it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::services::Service;
use crate::state::State;

/// Prints every upstream's instances with health, load and breaker state, from the gateway.
pub(crate) fn status(data_dir: &Path) -> ExitCode {
    run(async {
        let state = State::read(data_dir)?;
        let client = state.client(Duration::from_secs(5))?;
        let upstreams: serde_json::Value =
            get_json(&client, &format!("http://{}/upstreams", state.admin)).await?;
        println!(
            "gateway http://{} (admin http://{})",
            state.gateway, state.admin
        );
        println!();
        println!(
            "  {:<10} {:<22} {:<10} {:<10} {:>9} {:>9}  breaker",
            "service", "instance", "health", "ejected", "in flight", "requests"
        );
        for upstream in upstreams.as_array().into_iter().flatten() {
            let name = upstream["name"].as_str().unwrap_or("?");
            let breaker = upstream["breaker"].as_str().unwrap_or("?");
            if upstream["in_process"] == true {
                println!(
                    "  {name:<10} {:<22} {:<10} {:<10} {:>9} {:>9}  {breaker}",
                    "in process", "up", "no", "-", "-"
                );
                continue;
            }
            for endpoint in upstream["endpoints"].as_array().into_iter().flatten() {
                let health = if endpoint["healthy"] == true {
                    "up"
                } else {
                    "DOWN"
                };
                let ejected = match endpoint["ejected_for_ms"].as_u64() {
                    Some(0) | None => "no".to_owned(),
                    Some(ms) => format!("{} s", ms.div_ceil(1000)),
                };
                println!(
                    "  {name:<10} {:<22} {health:<10} {ejected:<10} {:>9} {:>9}  {breaker}",
                    endpoint["addr"].as_str().unwrap_or("?"),
                    endpoint["in_flight"].as_u64().unwrap_or(0),
                    endpoint["requests"].as_u64().unwrap_or(0),
                );
            }
        }
        Ok(())
    })
}

/// Sets how many instances a service runs, through the supervisor.
pub(crate) fn scale(data_dir: &Path, service: &str, count: usize) -> ExitCode {
    run(async {
        let service = Service::parse(service)
            .ok_or_else(|| format!("no service named {service:?}: {}", names()))?;
        let state = State::read(data_dir)?;
        let control = state
            .control
            .ok_or("this shop runs as one process (souk monolith): there is nothing to scale")?;
        let client = state.client(Duration::from_secs(120))?;
        let response = client
            .put(format!(
                "http://{}/services/{}/instances",
                control,
                service.name()
            ))
            .json(&serde_json::json!({ "count": count }))
            .send()
            .await
            .map_err(|e| format!("cannot reach souk up: {e}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(body["detail"].as_str().unwrap_or("refused").to_owned());
        }
        println!("{} now runs {count} instance(s): {}", service.name(), body);
        Ok(())
    })
}

/// The services one can name.
pub(crate) fn names() -> String {
    let names: Vec<_> = Service::ALL.iter().map(|s| s.name()).collect();
    format!("the services are {}", names.join(", "))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    response
        .json()
        .await
        .map_err(|e| format!("{url} answered something unreadable: {e}"))
}

/// Runs `work` on a runtime of its own and prints its error, if any, as the command's failure.
pub(crate) fn run(work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("souk: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("souk: {message}");
            ExitCode::FAILURE
        }
    }
}
