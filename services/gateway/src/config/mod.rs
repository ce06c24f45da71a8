//! The gateway's configuration file: listeners, routes and upstreams, in TOML.
//!
//! Parsing refuses unknown keys and wrong types (the message names the key and line); validation
//! then checks what types cannot (every route names an existing upstream, prefixes are paths,
//! every upstream has somewhere to send requests), naming the key as `routes[2].upstream`.
//! `examples/gateway.toml` documents every key and is parsed by a test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) mod aggregate;

pub use aggregate::{AggregateConfig, PartConfig};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listeners and process settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// Routes, matched by longest path prefix (then by method).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Upstreams by name.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Token verification for routes whose policy is `user` or `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// One public OpenAPI document merged from the upstreams' own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<OpenApiConfig>,
    /// Endpoints answered by fanning out to several upstreams (see `aggregate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregates: Vec<AggregateConfig>,
    /// The trace receiver and store (`souk up` and `souk monolith` turn it on). None: the
    /// gateway receives no spans and `/traces` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces: Option<TracesConfig>,
}

/// `[traces]`: an OTLP/HTTP receiver (`POST /v1/traces`, protobuf or JSON) on a listener of
/// its own, and a bounded store of what it received, read at `/traces` and drawn at
/// `/waterfall` on the admin and read-only listeners. Cannot change on reload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// Where the receiver listens (OTLP/HTTP's port is 4318). Keep it on loopback or a private
    /// network: anyone who reaches it can add spans (never more than the bounds below).
    pub otlp_listen: SocketAddr,
    /// Spans kept at most; the oldest go first.
    pub max_spans: usize,
    /// Estimated bytes of spans kept at most; the oldest go first.
    pub max_bytes: usize,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            otlp_listen: SocketAddr::from(([127, 0, 0, 1], 4318)),
            max_spans: 50_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[openapi]`: the gateway serves one document made of its upstreams' documents, with their
/// paths as clients see them through the routes (`/v1/products` → `/api/v1/products`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenApiConfig {
    /// Where the merged document is served.
    pub path: String,
    /// Its title.
    #[serde(default = "default_openapi_title")]
    pub title: String,
    /// The upstreams whose documents are merged, in order.
    pub upstreams: Vec<String>,
    /// Where each upstream serves its own document.
    #[serde(default = "default_openapi_document")]
    pub document_path: String,
}

fn default_openapi_title() -> String {
    "souk".into()
}

fn default_openapi_document() -> String {
    "/openapi.json".into()
}

/// `[auth]`: where the keys that verify access tokens come from, and what tokens must say.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The upstream that serves the JWKS (identity).
    pub jwks_upstream: String,
    /// Its path there.
    #[serde(default = "default_jwks_path")]
    pub jwks_path: String,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry.
    pub audience: String,
    /// How often the key set is fetched again (an unknown key id also triggers a fetch, at most
    /// once every 5 s).
    #[serde(default = "default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
}

fn default_jwks_path() -> String {
    "/.well-known/jwks.json".into()
}

fn default_jwks_refresh_secs() -> u64 {
    300
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The public listener.
    pub listen: SocketAddr,
    /// The admin listener (upstream state, endpoints, reload, faults). Every call but
    /// `/healthz` and `/readyz` wants `Authorization: Bearer <admin token>`. Keep it on loopback.
    pub admin_listen: SocketAddr,
    /// A file holding the admin token (a mounted Secret; `souk up` writes one per run). The
    /// `SOUK_GATEWAY_ADMIN_TOKEN` variable, when set, wins. Neither: the admin API refuses every
    /// call. The token is never printed, and cannot change on reload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<String>,
    /// The admin token itself, from `SOUK_GATEWAY_ADMIN_TOKEN` (never from the file, never
    /// printed).
    #[serde(skip)]
    pub admin_token: souk_chassis::Secret,
    /// A read-only listener for a browser and for monitoring: `/map` (the service map),
    /// `/upstreams`, `/metrics`, `/healthz`, `/readyz`, with no token. None: not served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Host names (besides IP addresses and `localhost`) the admin and metrics listeners answer
    /// to; any other `Host` is refused, so a web page cannot reach them by DNS rebinding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_hosts: Vec<String>,
    /// Proxy threads, each with its own runtime, listener socket and upstream connections;
    /// 0 means one per core.
    pub threads: usize,
    /// Write one access-log line per request to stdout.
    pub access_log: bool,
    /// Largest request body accepted when a route sets no limit, in bytes.
    pub body_limit_bytes: u64,
    /// Total time a request may take when a route sets no timeout.
    pub timeout_ms: u64,
    /// How long in-flight requests may finish after SIGTERM.
    pub drain_timeout_ms: u64,
    /// Lingering close: how long a connection the gateway ends (say after an early 413 or 401,
    /// its body unread) is still read and discarded, so the client reads the answer instead of
    /// a reset. 0 closes at once.
    pub linger_ms: u64,
    /// Lingering close: the most bytes read and discarded from such a connection.
    pub linger_bytes: u64,
    /// The most bytes a request's line and headers may take (at least 8192); beyond it a 431
    /// (414 for the line alone). It bounds what a client holding a connection can make the
    /// gateway buffer.
    pub max_header_bytes: usize,
    /// How long a client may take to send a request's line and headers; then the connection is
    /// closed (slow or unterminated headers hold nothing for long).
    pub header_timeout_ms: u64,
    /// Most client connections open at once, all threads together; more are answered 503 and
    /// closed as they are accepted. With `max_header_bytes`, it bounds the memory clients can
    /// hold.
    pub max_connections: usize,
    /// Most connections open at once from one client address (an IPv6 client's /64); a trusted
    /// proxy (the storefront) is held only to `max_connections`.
    pub max_connections_per_address: usize,
    /// Redis for rate limits shared by several gateways (routes with `rate_limit.shared`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Peers whose `X-Forwarded-For` is believed, as networks (`"10.42.0.0/16"`, the
    /// storefront's pods): a request from one of them is rate-limited and logged as the nearest
    /// address in that header that is not itself trusted. Empty (the default): no peer is
    /// believed, and a client-sent `X-Forwarded-For` is replaced by the peer's address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Upstreams whose endpoints' addresses are trusted proxies too (`["storefront"]`): the
    /// gateway learns them as it learns the endpoints (DNS, `souk up`), so exactly the
    /// storefront's own addresses are believed — not a whole network that a load balancer or a
    /// container runtime's port proxy also connects from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_upstreams: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            admin_token_file: None,
            admin_token: souk_chassis::Secret::default(),
            metrics_listen: None,
            admin_hosts: Vec::new(),
            threads: 0,
            access_log: true,
            body_limit_bytes: 1024 * 1024,
            timeout_ms: 15_000,
            drain_timeout_ms: 10_000,
            linger_ms: 5_000,
            linger_bytes: 16 * 1024 * 1024,
            max_header_bytes: 32 * 1024,
            header_timeout_ms: 10_000,
            max_connections: 4_096,
            max_connections_per_address: 256,
            redis_url: None,
            trusted_proxies: Vec::new(),
            trusted_upstreams: Vec::new(),
        }
    }
}

/// Who may call a route. Enforcement comes with identity; until then every route is public.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Anyone.
    #[default]
    Public,
    /// A signed-in user.
    User,
    /// An administrator.
    Admin,
}

/// `[[routes]]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A name for metrics, logs and fault injection.
    pub name: String,
    /// Path prefix, matched on segment boundaries (`/api/v1/products` matches
    /// `/api/v1/products/1` but not `/api/v1/productsx`); `{name}` segments match any one
    /// segment (`/api/v1/cart/items/{product_id}`).
    pub prefix: String,
    /// Match the prefix's path only, not the paths under it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
    /// Methods this route takes; all when absent.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// The upstream to send to.
    pub upstream: String,
    /// Replaces the matched prefix before forwarding (`/api/v1` → `/v1`).
    #[serde(default)]
    pub rewrite: Option<String>,
    /// Total time for the request, retries included.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Largest request body accepted.
    #[serde(default)]
    pub body_limit_bytes: Option<u64>,
    /// Who may call it.
    #[serde(default)]
    pub policy: Policy,
    /// Request rate limits, per client address and per signed-in user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
}

/// `[routes.rate_limit]`: a token bucket per client address and one per user; 0 disables one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute one client address may make, sustained…
    pub client_per_minute: u32,
    /// …and at once.
    pub client_burst: u32,
    /// Requests per minute one signed-in user may make, sustained…
    pub user_per_minute: u32,
    /// …and at once.
    pub user_burst: u32,
    /// Keep the buckets in Redis (`server.redis_url`), so that every gateway shares one budget.
    pub shared: bool,
}

/// How requests are spread over an upstream's endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Power of two choices on in-flight requests.
    #[default]
    P2c,
    /// In turn.
    RoundRobin,
}

/// The protocol spoken to an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1 with pooled keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 over cleartext (prior knowledge).
    H2c,
}

/// `[upstreams.<name>]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` endpoints.
    pub endpoints: Vec<SocketAddr>,
    /// A `host:port` re-resolved every `dns_refresh_ms` (a Kubernetes headless service); its
    /// addresses replace `endpoints`.
    pub dns: Option<String>,
    /// How often to re-resolve `dns`.
    pub dns_refresh_ms: u64,
    /// Balancing policy.
    pub balance: Balance,
    /// Protocol to the upstream.
    pub protocol: Protocol,
    /// Time to open a connection.
    pub connect_timeout_ms: u64,
    /// Time for one attempt to receive the response head.
    pub per_try_timeout_ms: u64,
    /// Most requests in flight to this upstream at once; more are shed with 503.
    pub max_in_flight: usize,
    /// Idle keep-alive connections kept per endpoint and proxy thread.
    pub max_idle_per_endpoint: usize,
    /// Active health checks.
    pub health: HealthConfig,
    /// Passive outlier ejection.
    pub outlier: OutlierConfig,
    /// Retries.
    pub retry: RetryConfig,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            dns: None,
            dns_refresh_ms: 5_000,
            balance: Balance::P2c,
            protocol: Protocol::Http1,
            connect_timeout_ms: 1_000,
            per_try_timeout_ms: 5_000,
            max_in_flight: 1_024,
            max_idle_per_endpoint: 512,
            health: HealthConfig::default(),
            outlier: OutlierConfig::default(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// `[upstreams.<name>.health]`: active checks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Path to GET; 2xx is healthy. Empty disables active checks.
    pub path: String,
    /// Time between checks of one endpoint.
    pub interval_ms: u64,
    /// Time a check may take.
    pub timeout_ms: u64,
    /// Failed checks in a row before an endpoint is taken out.
    pub unhealthy_threshold: u32,
    /// Passed checks in a row before it is put back.
    pub healthy_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            path: "/readyz".into(),
            interval_ms: 2_000,
            timeout_ms: 1_000,
            unhealthy_threshold: 2,
            healthy_threshold: 1,
        }
    }
}

/// `[upstreams.<name>.outlier]`: passive ejection, after Envoy's model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierConfig {
    /// Consecutive failures (5xx from the endpoint, or no answer) that eject it. 0 disables.
    pub consecutive_failures: u32,
    /// Ejection time is this × the number of times the endpoint was ejected…
    pub base_ejection_ms: u64,
    /// …capped here.
    pub max_ejection_ms: u64,
    /// Most endpoints ejected at once, in percent; at least one endpoint always stays in.
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejection_percent: 50,
        }
    }
}

/// `[upstreams.<name>.retry]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt (0 disables).
    pub max_retries: u32,
    /// First backoff; doubles per retry, with full jitter.
    pub backoff_base_ms: u64,
    /// Backoff cap.
    pub backoff_max_ms: u64,
    /// Retries may add at most this percentage of extra load…
    pub budget_percent: u32,
    /// …plus this many retries per second (so a quiet upstream can still be retried).
    pub min_retries_per_second: u32,
    /// Largest request body buffered so that it can be sent again; larger bodies stream and are
    /// never retried.
    pub buffer_body_bytes: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            backoff_base_ms: 25,
            backoff_max_ms: 250,
            budget_percent: 20,
            min_retries_per_second: 3,
            buffer_body_bytes: 64 * 1024,
        }
    }
}

/// `[upstreams.<name>.breaker]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed requests to the upstream that open the breaker. 0 disables.
    pub consecutive_failures: u32,
    /// How long it stays open before letting probes through.
    pub open_ms: u64,
    /// Requests let through while half-open; all must succeed to close it.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 20,
            open_ms: 5_000,
            half_open_probes: 3,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not match the schema.
    #[error("{0}")]
    Parse(String),
    /// A value is invalid; `key` names it.
    #[error("{key}: {message}")]
    Invalid {
        /// The offending key, e.g. `routes[2].upstream`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl GatewayConfig {
    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.body_limit_bytes == 0 || self.server.timeout_ms == 0 {
            return Err(invalid(
                "server",
                "body_limit_bytes and timeout_ms must be positive",
            ));
        }
        if self.server.max_header_bytes < 8192 {
            return Err(invalid(
                "server.max_header_bytes",
                "must be at least 8192 (hyper's smallest buffer)",
            ));
        }
        if self.server.header_timeout_ms == 0
            || self.server.max_connections == 0
            || self.server.max_connections_per_address == 0
        {
            return Err(invalid(
                "server",
                "header_timeout_ms, max_connections and max_connections_per_address must be positive",
            ));
        }
        if let Some(traces) = &self.traces
            && (traces.max_spans == 0 || traces.max_bytes < 64 * 1024)
        {
            return Err(invalid(
                "traces",
                "max_spans must be positive and max_bytes at least 65536",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let key = |field: &str| format!("routes[{i}].{field}");
            if route.name.is_empty() || !names.insert(route.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("{:?} is empty or used by another route", route.name),
                ));
            }
            let pattern = crate::pattern::Pattern::parse(&route.prefix, route.exact)
                .map_err(|why| invalid(key("prefix"), why))?;
            if let Some(rewrite) = &route.rewrite {
                if !rewrite.starts_with('/') {
                    return Err(invalid(
                        key("rewrite"),
                        format!("{rewrite:?} must start with /"),
                    ));
                }
                // Every {name} in the rewrite must be one the path gives a value to.
                let rewritten = crate::pattern::Pattern::parse(rewrite, true)
                    .map_err(|why| invalid(key("rewrite"), why))?;
                if let Some(unknown) = rewritten
                    .params()
                    .find(|name| !pattern.params().any(|given| given == *name))
                {
                    return Err(invalid(
                        key("rewrite"),
                        format!("{{{unknown}}} is not a parameter of the prefix"),
                    ));
                }
            }
            if !self.upstreams.contains_key(&route.upstream) {
                return Err(invalid(
                    key("upstream"),
                    format!("no upstream named {:?}", route.upstream),
                ));
            }
            for method in route.methods.iter().flatten() {
                if http::Method::from_bytes(method.as_bytes()).is_err()
                    || method.to_ascii_uppercase() != *method
                {
                    return Err(invalid(
                        key("methods"),
                        format!("{method:?} is not an HTTP method in capitals"),
                    ));
                }
            }
            if route.timeout_ms == Some(0) || route.body_limit_bytes == Some(0) {
                return Err(invalid(
                    key("timeout_ms"),
                    "timeout_ms and body_limit_bytes must be positive",
                ));
            }
        }
        for (name, upstream) in &self.upstreams {
            upstream.validate(&format!("upstreams.{name}"))?;
        }
        let shared = self
            .routes
            .iter()
            .position(|r| r.rate_limit.is_some_and(|l| l.shared));
        if let Some(missing) = self
            .server
            .trusted_upstreams
            .iter()
            .find(|u| !self.upstreams.contains_key(*u))
        {
            return Err(invalid(
                "server.trusted_upstreams",
                format!("no upstream named {missing:?}"),
            ));
        }
        if let (Some(i), None) = (shared, &self.server.redis_url) {
            return Err(invalid(
                format!("routes[{i}].rate_limit.shared"),
                "shared limits need server.redis_url",
            ));
        }
        if let Some(openapi) = &self.openapi {
            if !openapi.path.starts_with('/') || !openapi.document_path.starts_with('/') {
                return Err(invalid("openapi.path", "paths must start with /"));
            }
            if let Some(missing) = openapi
                .upstreams
                .iter()
                .find(|u| !self.upstreams.contains_key(*u))
            {
                return Err(invalid(
                    "openapi.upstreams",
                    format!("no upstream named {missing:?}"),
                ));
            }
        }
        aggregate::validate(self)?;
        let routes = self.routes.iter().map(|r| (r.policy, "routes"));
        let aggregates = self.aggregates.iter().map(|a| (a.policy, "aggregates"));
        // Each list's own index: `routes[2].policy`, `aggregates[0].policy`.
        let guarded = routes
            .enumerate()
            .chain(aggregates.enumerate())
            .map(|(i, (policy, kind))| (policy, kind, i));
        match &self.auth {
            Some(auth) if !self.upstreams.contains_key(&auth.jwks_upstream) => {
                return Err(invalid(
                    "auth.jwks_upstream",
                    format!("no upstream named {:?}", auth.jwks_upstream),
                ));
            }
            Some(auth) if !auth.jwks_path.starts_with('/') => {
                return Err(invalid("auth.jwks_path", "must start with /"));
            }
            None => {
                if let Some((_, kind, i)) = guarded.into_iter().find(|g| g.0 != Policy::Public) {
                    return Err(invalid(
                        format!("{kind}[{i}].policy"),
                        "a user or admin route needs an [auth] section",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl UpstreamConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let key = |field: &str| format!("{at}.{field}");
        if self.endpoints.is_empty() && self.dns.is_none() {
            return Err(invalid(
                key("endpoints"),
                "give at least one endpoint, or a dns name",
            ));
        }
        if let Some(dns) = &self.dns
            && dns
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .is_none()
        {
            return Err(invalid(key("dns"), format!("{dns:?} must be host:port")));
        }
        for (field, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("per_try_timeout_ms", self.per_try_timeout_ms),
            ("dns_refresh_ms", self.dns_refresh_ms),
            ("health.interval_ms", self.health.interval_ms),
            ("health.timeout_ms", self.health.timeout_ms),
            ("breaker.open_ms", self.breaker.open_ms),
        ] {
            if value == 0 {
                return Err(invalid(key(field), "must be positive"));
            }
        }
        if self.max_in_flight == 0 {
            return Err(invalid(key("max_in_flight"), "must be positive"));
        }
        if !self.health.path.is_empty() && !self.health.path.starts_with('/') {
            return Err(invalid(
                key("health.path"),
                "must start with / (or be empty to disable checks)",
            ));
        }
        if self.outlier.max_ejection_percent > 100 {
            return Err(invalid(
                key("outlier.max_ejection_percent"),
                "must be 0 to 100",
            ));
        }
        if self.breaker.half_open_probes == 0 {
            return Err(invalid(
                key("breaker.half_open_probes"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Milliseconds as a [`Duration`].
pub(crate) fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[routes]]
        name = "products"
        prefix = "/api/v1/products"
        upstream = "catalog"
        rewrite = "/v1/products"

        [upstreams.catalog]
        endpoints = ["127.0.0.1:8101"]
    "#;

    fn refused(text: &str) -> String {
        GatewayConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_file_gets_defaults() {
        let config = GatewayConfig::parse(MINIMAL).unwrap();
        assert_eq!(config.server.listen.port(), 8080);
        assert_eq!(config.upstreams["catalog"].balance, Balance::P2c);
        assert_eq!(config.upstreams["catalog"].outlier.consecutive_failures, 5);
        assert_eq!(config.routes[0].policy, Policy::Public);
    }

    #[test]
    fn the_shipped_example_parses() {
        let example = include_str!("../../examples/gateway.toml");
        let config = GatewayConfig::parse(example).unwrap();
        assert!(config.routes.len() >= 3);
        assert_eq!(config.traces, Some(TracesConfig::default()));
    }

    #[test]
    fn unknown_keys_and_bad_types_name_the_key() {
        let msg = refused(&MINIMAL.replace("rewrite =", "rewrit ="));
        assert!(msg.contains("rewrit"), "{msg}");
        let msg = refused(&format!("{MINIMAL}\nmax_in_flight = \"lots\""));
        assert!(msg.contains("max_in_flight"), "{msg}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        assert!(
            refused(&MINIMAL.replace("upstream = \"catalog\"", "upstream = \"nope\""))
                .starts_with("routes[0].upstream")
        );
        assert!(
            refused(&MINIMAL.replace("prefix = \"/api", "prefix = \"api"))
                .starts_with("routes[0].prefix")
        );
        let msg = refused(&MINIMAL.replace("endpoints = [\"127.0.0.1:8101\"]", "endpoints = []"));
        assert!(msg.starts_with("upstreams.catalog.endpoints"), "{msg}");
        let msg = refused(&format!(
            "{MINIMAL}\n[upstreams.catalog.health]\ninterval_ms = 0"
        ));
        assert!(
            msg.starts_with("upstreams.catalog.health.interval_ms"),
            "{msg}"
        );
        let msg = refused(&MINIMAL.replace(
            "name = \"products\"",
            "name = \"products\"\nmethods = [\"get\"]",
        ));
        assert!(msg.starts_with("routes[0].methods"), "{msg}");
    }

    #[test]
    fn openapi_merging_names_existing_upstreams() {
        let ok = format!(
            "{MINIMAL}\n[openapi]\npath = \"/api/openapi.json\"\nupstreams = [\"catalog\"]"
        );
        assert_eq!(
            GatewayConfig::parse(&ok)
                .unwrap()
                .openapi
                .unwrap()
                .document_path,
            "/openapi.json"
        );
        let bad =
            format!("{MINIMAL}\n[openapi]\npath = \"/api/openapi.json\"\nupstreams = [\"nope\"]");
        assert!(refused(&bad).starts_with("openapi.upstreams"));
    }

    #[test]
    fn bad_endpoint_addresses_are_refused() {
        let msg = refused(&MINIMAL.replace("127.0.0.1:8101", "catalog"));
        assert!(msg.contains("endpoints"), "{msg}");
    }
}
