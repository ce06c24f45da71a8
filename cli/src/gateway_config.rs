//! The gateway's configuration, from the registry of services: for a run of `souk up` or `souk
//! monolith` (`for_run`: the processes it started), and for the deployments (`for_target`:
//! Compose and Kubernetes, whose upstreams are DNS names). `souk gateway-config --target …`
//! prints the deployments' files; they are committed under `deploy/`, and a test fails when
//! generating them again would change anything, so the route table exists once.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use souk_gateway::config::{AggregateConfig, PartConfig};
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
    /// The trace receiver (OTLP/HTTP), when the run collects traces.
    pub(crate) otlp: Option<SocketAddr>,
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
    pub(crate) fn of(options: &crate::up::Options) -> Self {
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

/// The gateway of a run: on `listeners`, in front of the processes (or in-process routers, whose
/// endpoints are never dialled) at `endpoints`.
pub(crate) fn for_run(
    listeners: &Listeners,
    endpoints: &BTreeMap<Service, Vec<SocketAddr>>,
    tuning: &Tuning,
) -> GatewayConfig {
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
            (*service, upstream)
        })
        .collect();
    let server = ServerConfig {
        listen: listeners.listen,
        admin_listen: listeners.admin,
        metrics_listen: Some(listeners.metrics),
        admin_token_file: Some(listeners.token_file.clone()),
        access_log: tuning.access_log,
        // A run's gateway listens on loopback, where every client has the one address — a
        // browser, a load generator, and the services' own calls through this gateway (cart
        // and orders pricing lines at catalog, every service fetching the signing keys). A cap
        // per address would be a second, smaller cap on them all, which the shop's own calls
        // meet first under load: at 2,200 mixed requests/s `souk up` refused 5,477 connections
        // for it, and cart and orders answered 503 for a catalog they could not reach. The
        // cap on all connections stays; deployments (`rendered_for`) keep theirs per address.
        max_connections_per_address: ServerConfig::default().max_connections,
        ..ServerConfig::default()
    };
    let mut config = shop(server, upstreams, tuning.rate_limit_factor);
    config.traces = listeners
        .otlp
        .map(|otlp_listen| souk_gateway::config::TracesConfig {
            otlp_listen,
            ..souk_gateway::config::TracesConfig::default()
        });
    config
}

/// Where a deployment runs the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Target {
    /// `deploy/compose.yaml`: services found by Compose's DNS (`catalog:8101`).
    Compose,
    /// `deploy/k8s`: services found through their headless Services (`catalog-headless:8101`).
    K8s,
}

impl Target {
    /// The committed file generated for this target.
    #[cfg(test)]
    fn path(self) -> &'static str {
        match self {
            Self::Compose => "deploy/compose/gateway.toml",
            Self::K8s => "deploy/k8s/base/gateway.toml",
        }
    }

    fn header(self) -> &'static str {
        match self {
            Self::Compose => {
                "# souk-gateway in Docker Compose: upstreams found through Compose's DNS, so\n\
                 # `docker compose up --scale catalog=3` spreads load over every catalog container.\n\
                 # The admin API stays inside the container (`docker compose exec`), with the token\n\
                 # of SOUK_GATEWAY_ADMIN_TOKEN (deploy/.env); the read-only listener serves the\n\
                 # HEALTHCHECK, metrics and the service map.\n"
            }
            Self::K8s => {
                "# souk-gateway in Kubernetes: upstreams found through each service's headless\n\
                 # Service (DNS), re-resolved every dns_refresh_ms. Mounted from the ConfigMap\n\
                 # `gateway-config` at /etc/souk. The admin API stays inside the pod (kubectl\n\
                 # port-forward, with the token of Secret souk-gateway); probes, metrics scrapes and\n\
                 # the service map read the read-only listener, which the NetworkPolicy opens to the\n\
                 # monitoring namespace only.\n"
            }
        }
    }
}

/// The gateway of a deployment.
pub(crate) fn for_target(target: Target) -> GatewayConfig {
    let upstreams = Service::ALL
        .iter()
        .map(|service| {
            let host = match target {
                Target::Compose => service.name().to_owned(),
                Target::K8s => format!("{}-headless", service.name()),
            };
            let upstream = UpstreamConfig {
                dns: Some(format!("{host}:{}", service.port())),
                dns_refresh_ms: 5000,
                ..UpstreamConfig::default()
            };
            (*service, upstream)
        })
        .collect();
    let server = ServerConfig {
        listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
        metrics_listen: Some(match target {
            Target::Compose => SocketAddr::from(([127, 0, 0, 1], 9902)),
            Target::K8s => SocketAddr::from(([0, 0, 0, 0], 9902)),
        }),
        // Kubernetes gives the pod two CPUs (its limit); Compose, one thread per core.
        threads: match target {
            Target::Compose => 0,
            Target::K8s => 2,
        },
        access_log: true,
        // Slow or huge headers and many connections: at most 2048 connections of at most 32 KiB
        // of headers each (64 MiB), every head within 10 s; 128 from one address.
        max_connections: 2048,
        max_connections_per_address: 128,
        ..ServerConfig::default()
    };
    shop(server, upstreams, 1)
}

/// `config` as TOML, after `header`, as `souk up` writes it and `deploy/` commits it.
pub(crate) fn render(config: &GatewayConfig, header: &str) -> Result<String, String> {
    let text = toml::to_string(config)
        .map_err(|e| format!("cannot write the gateway configuration: {e}"))?;
    Ok(format!("{header}{text}"))
}

/// The committed text of `target`'s configuration.
pub(crate) fn rendered_for(target: Target) -> Result<String, String> {
    let header = format!(
        "{}# Generated by `souk gateway-config --target {}` from the registry of services\n\
         # (cli/src/services.rs): edit that, not this file. tests/workspace parses it.\n\n",
        target.header(),
        match target {
            Target::Compose => "compose",
            Target::K8s => "k8s",
        }
    );
    render(&for_target(target), &header)
}

/// The shop's gateway: every service in `upstreams` with its routes, identity's keys for tokens,
/// the merged OpenAPI document and the product page aggregate.
fn shop(
    server: ServerConfig,
    upstreams: BTreeMap<Service, UpstreamConfig>,
    rate_limit_factor: u32,
) -> GatewayConfig {
    let routes = upstreams
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
    let has = |service: Service| upstreams.contains_key(&service);
    // Tokens are identity's, checked against its published keys.
    let auth = has(Service::IDENTITY).then(|| AuthConfig {
        jwks_upstream: Service::IDENTITY.name().to_owned(),
        jwks_path: "/.well-known/jwks.json".to_owned(),
        issuer: "souk-identity".to_owned(),
        audience: "souk".to_owned(),
        jwks_refresh_secs: 300,
    });
    let server = ServerConfig {
        // Every service accepts bodies up to 64 KiB (the chassis' default): larger ones are
        // refused at the door instead of being carried to a service that refuses them.
        body_limit_bytes: 64 * 1024,
        // The storefront forwards for the shopper, so per-client limits apply to shoppers, not
        // to it. Believed from its own addresses only (learned from its endpoints), never from
        // a whole network: every local program calls from loopback, and Docker's proxy of a
        // published port or an ingress calls from the pod network for every client.
        trusted_upstreams: has(Service::STOREFRONT)
            .then(|| Service::STOREFRONT.name().to_owned())
            .into_iter()
            .collect(),
        ..server
    };
    let aggregates = (has(Service::CATALOG) && has(Service::INVENTORY))
        .then(product_details)
        .into_iter()
        .collect();
    GatewayConfig {
        server,
        routes,
        traces: None,
        // One public document, merged from every service's own.
        openapi: Some(OpenApiConfig {
            path: "/api/openapi.json".to_owned(),
            title: "souk".to_owned(),
            upstreams: upstreams
                .keys()
                .filter(|s| s.has_openapi())
                .map(|s| s.name().to_owned())
                .collect(),
            document_path: "/openapi.json".to_owned(),
        }),
        upstreams: upstreams
            .into_iter()
            .map(|(service, upstream)| (service.name().to_owned(), upstream))
            .collect(),
        auth,
        aggregates,
    }
}

/// The product page: the product from catalog, and what one can buy now from inventory — which
/// may be late or down without taking the page with it (DESIGN.md's public API).
fn product_details() -> AggregateConfig {
    AggregateConfig {
        name: "product-details".to_owned(),
        path: "/api/v1/products/{id}/details".to_owned(),
        policy: souk_gateway::config::Policy::Public,
        parts: vec![
            PartConfig {
                name: "product".to_owned(),
                upstream: Service::CATALOG.name().to_owned(),
                path: "/v1/products/{id}".to_owned(),
                timeout_ms: 2000,
                required: true,
            },
            PartConfig {
                name: "availability".to_owned(),
                upstream: Service::INVENTORY.name().to_owned(),
                path: "/v1/availability/{id}".to_owned(),
                timeout_ms: 150,
                required: false,
            },
        ],
    }
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
            otlp: Some("127.0.0.1:4318".parse().unwrap()),
        };
        let config = for_run(
            &listeners,
            &endpoints,
            &Tuning {
                access_log: true,
                rate_limit_factor: 1,
            },
        );
        let text = render(&config, "").unwrap();
        assert!(
            !text.contains("token ="),
            "the token itself is never in the file: {text}"
        );
        let parsed = GatewayConfig::parse(&text).unwrap();
        assert_eq!(
            parsed.upstreams["catalog"].endpoints,
            endpoints[&Service::CATALOG]
        );
        // On loopback every client shares one address: no cap of its own below the total.
        assert!(parsed.server.listen.ip().is_loopback());
        assert_eq!(
            parsed.server.max_connections_per_address,
            parsed.server.max_connections
        );
        assert_eq!(parsed.aggregates[0].name, "product-details");
        assert_eq!(
            parsed.traces.map(|t| t.otlp_listen),
            listeners.otlp,
            "the run's trace receiver"
        );
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

    #[test]
    fn the_committed_deployment_configs_are_what_the_registry_generates() {
        for target in [Target::Compose, Target::K8s] {
            let path = format!("{}/../{}", env!("CARGO_MANIFEST_DIR"), target.path());
            let committed = std::fs::read_to_string(&path).unwrap();
            let generated = rendered_for(target).unwrap();
            assert!(
                committed == generated,
                "{} is out of date: regenerate it with\n  cargo run -q -p souk -- gateway-config --target {} > {}\nand review the diff",
                target.path(),
                format!("{target:?}").to_lowercase(),
                target.path()
            );
            let parsed = GatewayConfig::parse(&committed).unwrap();
            assert_eq!(parsed.upstreams.len(), Service::ALL.len());
        }
    }
}
