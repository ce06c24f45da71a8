//! Background upkeep, run on the admin thread: active health checks of every endpoint and DNS
//! re-resolution of upstreams named by a host (Kubernetes headless services).
//!
//! One loop ticks every 100 ms and starts whatever is due, reading the current routing table each
//! time, so a reload or an endpoint change needs no task bookkeeping.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::ms;
use crate::proxy::Shared;
use crate::upstream::{Endpoint, Upstream};

type CheckClient = Client<HttpConnector, Empty<Bytes>>;

/// Runs health checks and DNS refreshes until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: souk_chassis::Shutdown) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    let client: CheckClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build(connector);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut ticks: u64 = 0;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.wait() => return,
        }
        let table = shared.table.load_full();
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(100) {
            table.routes().iter().for_each(|route| route.limits.prune());
        }
        if let Some(verifier) = table.verifier.as_ref().filter(|v| v.refresh_due())
            && let Some(upstream) = table.upstreams.get(&verifier.config.jwks_upstream)
        {
            let (verifier, upstream) = (Arc::clone(verifier), Arc::clone(upstream));
            let in_process = shared
                .in_process
                .get(&verifier.config.jwks_upstream)
                .cloned();
            tokio::spawn(async move {
                match verifier.fetch(&upstream, in_process.as_ref()).await {
                    Ok(keys) => tracing::debug!(keys, "fetched the JWKS"),
                    Err(err) => {
                        tracing::warn!(%err, "cannot fetch the JWKS; keeping the keys we have")
                    }
                }
            });
        }
        for upstream in table.upstreams.values() {
            let now = upstream.clock.now_ms();
            if upstream.config.dns.is_some() && now >= upstream.next_dns_ms.load(Ordering::Relaxed)
            {
                upstream
                    .next_dns_ms
                    .store(now + upstream.config.dns_refresh_ms, Ordering::Relaxed);
                tokio::spawn(resolve(Arc::clone(upstream)));
            }
            // In-process upstreams have no endpoint to check.
            if upstream.config.health.path.is_empty()
                || shared.in_process.contains_key(&*upstream.name)
            {
                continue;
            }
            for endpoint in upstream.endpoints().iter() {
                if now >= endpoint.next_check_ms.load(Ordering::Relaxed) {
                    endpoint
                        .next_check_ms
                        .store(now + upstream.config.health.interval_ms, Ordering::Relaxed);
                    tokio::spawn(check(
                        client.clone(),
                        Arc::clone(upstream),
                        Arc::clone(endpoint),
                    ));
                }
            }
        }
    }
}

/// One health check of one endpoint.
async fn check(client: CheckClient, upstream: Arc<Upstream>, endpoint: Arc<Endpoint>) {
    let health = &upstream.config.health;
    let uri = format!("http://{}{}", endpoint.addr, health.path);
    let passed = match uri.parse::<http::Uri>() {
        Ok(uri) => matches!(
            tokio::time::timeout(ms(health.timeout_ms), client.get(uri)).await,
            Ok(Ok(response)) if response.status().is_success()
        ),
        Err(_) => false,
    };
    if passed {
        endpoint.check_failures.store(0, Ordering::Relaxed);
        let successes = endpoint.check_successes.fetch_add(1, Ordering::Relaxed) + 1;
        if !endpoint.healthy.load(Ordering::Relaxed) && successes >= health.healthy_threshold {
            endpoint.healthy.store(true, Ordering::Relaxed);
            tracing::info!(upstream = %upstream.name, endpoint = %endpoint.addr, "endpoint passes health checks again");
        }
    } else {
        endpoint.check_successes.store(0, Ordering::Relaxed);
        let failures = endpoint.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if endpoint.healthy.load(Ordering::Relaxed) && failures >= health.unhealthy_threshold {
            endpoint.healthy.store(false, Ordering::Relaxed);
            tracing::warn!(upstream = %upstream.name, endpoint = %endpoint.addr, "endpoint fails health checks: taken out");
        }
    }
}

/// Re-resolves an upstream's DNS name and replaces its endpoints when the answer changed.
async fn resolve(upstream: Arc<Upstream>) {
    let Some(name) = &upstream.config.dns else {
        return;
    };
    match tokio::net::lookup_host(name.as_str()).await {
        Ok(addrs) => {
            let mut addrs: Vec<_> = addrs.collect();
            addrs.sort();
            let mut current: Vec<_> = upstream.endpoints().iter().map(|e| e.addr).collect();
            current.sort();
            if !addrs.is_empty() && addrs != current {
                tracing::info!(upstream = %upstream.name, endpoints = ?addrs, "DNS changed the endpoints");
                upstream.set_endpoints(&addrs);
            }
        }
        // Keep the last known endpoints: a resolver hiccup must not empty the pool.
        Err(err) => {
            tracing::warn!(upstream = %upstream.name, %err, "DNS re-resolution failed; keeping the endpoints")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::UpstreamConfig;

    #[tokio::test]
    async fn dns_names_replace_the_endpoints_with_what_they_resolve_to() {
        let config = UpstreamConfig {
            endpoints: vec!["127.0.0.1:1".parse().unwrap()],
            dns: Some("localhost:4321".into()),
            ..UpstreamConfig::default()
        };
        let upstream = Arc::new(Upstream::new("u", config, None, Clock::manual()));
        resolve(Arc::clone(&upstream)).await;
        let addrs: Vec<_> = upstream.endpoints().iter().map(|e| e.addr).collect();
        assert!(
            addrs.contains(&"127.0.0.1:4321".parse().unwrap()),
            "{addrs:?}"
        );
        assert!(!addrs.iter().any(|a| a.port() == 1), "{addrs:?}");
    }

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_endpoints() {
        let config = UpstreamConfig {
            endpoints: vec!["127.0.0.1:1".parse().unwrap()],
            dns: Some("no-such-host.invalid:80".into()),
            ..UpstreamConfig::default()
        };
        let upstream = Arc::new(Upstream::new("u", config, None, Clock::manual()));
        resolve(Arc::clone(&upstream)).await;
        assert_eq!(upstream.endpoints()[0].addr.port(), 1);
    }
}
