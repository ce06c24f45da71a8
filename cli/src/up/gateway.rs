//! The gateway configuration `souk up` writes for the processes it started.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use souk_gateway::config::{
    AuthConfig, GatewayConfig, HealthConfig, OpenApiConfig, RouteConfig, ServerConfig,
    UpstreamConfig,
};

use crate::services::Service;

/// TOML for a gateway on `listen` (admin on `admin`) in front of `endpoints`.
pub(crate) fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    endpoints: &BTreeMap<Service, Vec<SocketAddr>>,
    access_log: bool,
) -> String {
    let routes = endpoints
        .keys()
        .flat_map(|service| {
            service.routes().iter().map(move |route| RouteConfig {
                name: route.name.to_owned(),
                prefix: route.prefix.to_owned(),
                methods: route
                    .methods
                    .map(|ms| ms.iter().map(|m| (*m).to_owned()).collect()),
                upstream: service.name().to_owned(),
                rewrite: Some(route.rewrite.to_owned()),
                timeout_ms: None,
                body_limit_bytes: None,
                policy: route.policy,
                rate_limit: route.rate_limit,
            })
        })
        .collect();
    let upstreams = endpoints
        .iter()
        .map(|(service, addrs)| {
            let upstream = UpstreamConfig {
                endpoints: addrs.clone(),
                // A laptop shop: notice a dead process within a second.
                health: HealthConfig {
                    interval_ms: 500,
                    ..HealthConfig::default()
                },
                ..UpstreamConfig::default()
            };
            (service.name().to_owned(), upstream)
        })
        .collect();
    // Tokens are identity's, checked against its published keys.
    let auth = endpoints
        .contains_key(&Service::Identity)
        .then(|| AuthConfig {
            jwks_upstream: Service::Identity.name().to_owned(),
            jwks_path: "/.well-known/jwks.json".to_owned(),
            issuer: "souk-identity".to_owned(),
            audience: "souk".to_owned(),
            jwks_refresh_secs: 300,
        });
    let config = GatewayConfig {
        server: ServerConfig {
            listen,
            admin_listen: admin,
            access_log,
            ..ServerConfig::default()
        },
        routes,
        upstreams,
        auth,
        // One public document, merged from every service's own.
        openapi: Some(OpenApiConfig {
            path: "/api/openapi.json".to_owned(),
            title: "souk".to_owned(),
            upstreams: endpoints.keys().map(|s| s.name().to_owned()).collect(),
            document_path: "/openapi.json".to_owned(),
        }),
    };
    let header = "# Written by `souk up` for the processes it started; rewritten on every start.\n";
    format!("{header}{}", toml::to_string(&config).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_config_is_valid_and_routes_every_service() {
        let endpoints: BTreeMap<Service, Vec<SocketAddr>> = Service::ALL
            .iter()
            .zip(9001..)
            .map(|(service, port)| (*service, vec![SocketAddr::from(([127, 0, 0, 1], port))]))
            .collect();
        let text = config(
            "127.0.0.1:8080".parse().unwrap(),
            "127.0.0.1:9901".parse().unwrap(),
            &endpoints,
            true,
        );
        let parsed = GatewayConfig::parse(&text).unwrap();
        assert_eq!(
            parsed.upstreams["catalog"].endpoints,
            endpoints[&Service::Catalog]
        );
        for service in Service::ALL {
            for route in service.routes() {
                assert!(
                    parsed.routes.iter().any(|r| r.prefix == route.prefix),
                    "{}",
                    route.prefix
                );
            }
        }
    }
}
