//! The gateway configuration `souk up` writes for the processes it started.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use souk_gateway::aggregate::{AggregateConfig, PartConfig};
use souk_gateway::config::{
    AuthConfig, GatewayConfig, HealthConfig, OpenApiConfig, RouteConfig, ServerConfig,
    UpstreamConfig,
};

use crate::services::Service;

/// Where the gateway listens, and where its admin token is.
#[derive(Debug, Clone)]
pub(crate) struct Listeners {
    /// The shop.
    pub(crate) listen: SocketAddr,
    /// The admin API (wants the token).
    pub(crate) admin: SocketAddr,
    /// The read-only service map and metrics.
    pub(crate) metrics: SocketAddr,
    /// The file holding this run's admin token.
    pub(crate) token_file: String,
}

/// What a run changes in the generated configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// One access-log line per request on stdout.
    pub(crate) access_log: bool,
    /// Every rate limit's rate and burst multiplied by this.
    pub(crate) rate_limit_factor: u32,
}

impl Tuning {
    /// The tuning `options` ask for.
    pub(crate) fn of(options: &super::Options) -> Self {
        Self {
            access_log: !options.quiet,
            rate_limit_factor: options.rate_limit_factor,
        }
    }
}

/// `limit` with its rates and bursts multiplied by `factor`.
fn scaled(
    limit: Option<souk_gateway::config::RateLimitConfig>,
    factor: u32,
) -> Option<souk_gateway::config::RateLimitConfig> {
    limit.map(|l| souk_gateway::config::RateLimitConfig {
        client_per_minute: l.client_per_minute.saturating_mul(factor),
        client_burst: l.client_burst.saturating_mul(factor),
        user_per_minute: l.user_per_minute.saturating_mul(factor),
        user_burst: l.user_burst.saturating_mul(factor),
        shared: l.shared,
    })
}

/// TOML for a gateway on `listeners` in front of `endpoints`.
pub(crate) fn config(
    listeners: &Listeners,
    endpoints: &BTreeMap<Service, Vec<SocketAddr>>,
    tuning: &Tuning,
) -> String {
    let Tuning {
        access_log,
        rate_limit_factor,
    } = *tuning;
    let routes = endpoints
        .keys()
        .flat_map(|service| {
            service.routes().iter().map(move |route| RouteConfig {
                name: route.name.to_owned(),
                prefix: route.prefix.to_owned(),
                exact: route.exact,
                methods: route
                    .methods
                    .map(|ms| ms.iter().map(|m| (*m).to_owned()).collect()),
                upstream: service.name().to_owned(),
                rewrite: Some(route.rewrite.to_owned()),
                timeout_ms: None,
                body_limit_bytes: None,
                policy: route.policy,
                rate_limit: scaled(route.rate_limit, rate_limit_factor),
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
            listen: listeners.listen,
            admin_listen: listeners.admin,
            metrics_listen: Some(listeners.metrics),
            admin_token_file: Some(listeners.token_file.clone()),
            access_log,
            // Every service accepts bodies up to 64 KiB (the chassis' default): larger ones are
            // refused at the door instead of being carried to a service that refuses them.
            body_limit_bytes: 64 * 1024,
            // The storefront forwards for the shopper, so per-client limits apply to shoppers,
            // not to it. Believed from its own address only (learned from its endpoints, a
            // loopback address of its own), never from loopback as a whole: every local
            // program calls from there.
            trusted_upstreams: endpoints
                .contains_key(&Service::Storefront)
                .then(|| Service::Storefront.name().to_owned())
                .into_iter()
                .collect(),
            ..ServerConfig::default()
        },
        routes,
        upstreams,
        auth,
        // One public document, merged from every service's own.
        openapi: Some(OpenApiConfig {
            path: "/api/openapi.json".to_owned(),
            title: "souk".to_owned(),
            upstreams: endpoints
                .keys()
                .filter(|s| s.has_openapi())
                .map(|s| s.name().to_owned())
                .collect(),
            document_path: "/openapi.json".to_owned(),
        }),
        aggregates: product_details(endpoints).into_iter().collect(),
    };
    let header = "# Written by `souk up` for the processes it started; rewritten on every start.\n";
    format!("{header}{}", toml::to_string(&config).unwrap_or_default())
}

/// The product page: the product from catalog, and what one can buy now from inventory — which
/// may be late or down without taking the page with it (DESIGN.md's public API).
fn product_details(endpoints: &BTreeMap<Service, Vec<SocketAddr>>) -> Option<AggregateConfig> {
    let both =
        endpoints.contains_key(&Service::Catalog) && endpoints.contains_key(&Service::Inventory);
    both.then(|| AggregateConfig {
        name: "product-details".to_owned(),
        path: "/api/v1/products/{id}/details".to_owned(),
        policy: souk_gateway::config::Policy::Public,
        parts: vec![
            PartConfig {
                name: "product".to_owned(),
                upstream: Service::Catalog.name().to_owned(),
                path: "/v1/products/{id}".to_owned(),
                timeout_ms: 2000,
                required: true,
            },
            PartConfig {
                name: "availability".to_owned(),
                upstream: Service::Inventory.name().to_owned(),
                path: "/v1/availability/{id}".to_owned(),
                timeout_ms: 150,
                required: false,
            },
        ],
    })
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
        let listeners = Listeners {
            listen: "127.0.0.1:8080".parse().unwrap(),
            admin: "127.0.0.1:9901".parse().unwrap(),
            metrics: "127.0.0.1:9902".parse().unwrap(),
            token_file: "/data/admin-token".into(),
        };
        let text = config(
            &listeners,
            &endpoints,
            &Tuning {
                access_log: true,
                rate_limit_factor: 1,
            },
        );
        assert!(
            !text.contains("token ="),
            "the token itself is never in the file: {text}"
        );
        let parsed = GatewayConfig::parse(&text).unwrap();
        assert_eq!(
            parsed.upstreams["catalog"].endpoints,
            endpoints[&Service::Catalog]
        );
        assert_eq!(parsed.aggregates[0].name, "product-details");
        assert_eq!(parsed.server.trusted_upstreams, ["storefront"]);
        assert!(
            parsed.server.trusted_proxies.is_empty(),
            "not loopback as a whole"
        );
        assert_eq!(
            parsed.server.admin_token_file.as_deref(),
            Some("/data/admin-token")
        );
        // Identity's internal service-token endpoint is on no public route.
        let internal = "/api/v1/auth/service-token";
        for route in &parsed.routes {
            assert!(
                !(internal == route.prefix || internal.starts_with(&format!("{}/", route.prefix)))
                    || route.upstream == "storefront",
                "route {} publishes {internal}",
                route.name
            );
        }
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
