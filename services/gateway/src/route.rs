//! A route, ready to serve: the path it matches, the methods it takes, where it sends them and
//! under which rules (timeout, body limit, policy, limits, faults). The table holds them; the
//! request path, the aggregates and the OpenAPI merger read them.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::config::{GatewayConfig, Policy, RouteConfig, ms};
use crate::fault::Faults;
use crate::pattern::Pattern;
use crate::upstream::Upstream;

/// A route, ready to serve.
#[derive(Debug)]
pub struct Route {
    /// Its name.
    pub name: Arc<str>,
    path: Pattern,
    methods: Option<Vec<Method>>,
    rewrite: Option<String>,
    /// Where it sends requests.
    pub upstream: Arc<Upstream>,
    /// Total time for a request, retries included.
    pub timeout: Duration,
    /// Largest request body.
    pub body_limit: u64,
    /// Who may call it (enforced once identity exists).
    pub policy: Policy,
    /// Faults injected on this route.
    pub faults: Faults,
    /// Rate limits.
    pub limits: crate::limit::Limits,
    /// Metric handles.
    pub metrics: crate::metrics::RouteMetrics,
}

impl Route {
    pub(crate) fn new(
        config: &RouteConfig,
        upstream: Arc<Upstream>,
        faults: Faults,
        gateway: &GatewayConfig,
    ) -> Self {
        let methods = config.methods.as_ref().map(|ms| {
            ms.iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect()
        });
        Self {
            metrics: crate::metrics::RouteMetrics::new(&config.name, &upstream.name),
            name: Arc::from(config.name.as_str()),
            // Validated with the config; a pattern that no longer parses matches nothing.
            path: Pattern::parse(&config.prefix, config.exact)
                .unwrap_or_else(|_| Pattern::nothing()),
            methods,
            rewrite: config.rewrite.clone(),
            upstream,
            timeout: ms(config.timeout_ms.unwrap_or(gateway.server.timeout_ms)),
            body_limit: config
                .body_limit_bytes
                .unwrap_or(gateway.server.body_limit_bytes),
            policy: config.policy,
            limits: crate::limit::Limits::new(&config.name, config.rate_limit.as_ref()),
            faults,
        }
    }

    /// The origin-form URI to send upstream: the client's own when nothing is rewritten (a cheap
    /// clone), else the rewritten path and query.
    pub fn upstream_uri(&self, uri: &http::Uri) -> http::Uri {
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        if self.rewrite.is_none() && uri.scheme().is_none() {
            return uri.clone();
        }
        http::Uri::try_from(self.upstream_path(path_and_query))
            .unwrap_or_else(|_| http::Uri::from_static("/"))
    }

    /// Where a client reaches `upstream_path` (a path template in the upstream's own document)
    /// through this route, if it does.
    pub fn public_path(&self, upstream_path: &str) -> Option<String> {
        let served_under = self.rewrite.as_deref().unwrap_or(self.path.as_str());
        self.path.public_path(served_under, upstream_path)
    }

    /// The path it matches, as configured.
    pub fn path(&self) -> &Pattern {
        &self.path
    }

    /// The methods it takes; `None`: every method.
    pub fn methods(&self) -> Option<&[Method]> {
        self.methods.as_deref()
    }

    /// Whether the route takes `method` (lowercase, as OpenAPI writes it).
    pub fn allows(&self, method: &str) -> bool {
        self.methods.as_ref().is_none_or(|methods| {
            methods
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method))
        })
    }

    /// The path and query to send upstream: the matched part replaced by `rewrite`, if set.
    pub fn upstream_path(&self, path_and_query: &str) -> String {
        match &self.rewrite {
            Some(rewrite) => self.path.rewrite(rewrite, path_and_query),
            None => path_and_query.to_owned(),
        }
    }
}
