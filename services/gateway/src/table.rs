//! The routing table: routes matched by their path (a prefix or an exact path, either with
//! `{name}` segments; `pattern.rs`), the most specific first, and the upstreams they send to.
//! Built from a config; a reload builds a new table that keeps the old upstreams' state.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Method;

use crate::clock::Clock;
use crate::config::GatewayConfig;
use crate::pattern::Pattern;
pub use crate::route::Route;
use crate::upstream::Upstream;

/// What a path and method map to.
#[derive(Debug)]
pub enum Match<'a> {
    /// A route takes it.
    Found(&'a Arc<Route>),
    /// Routes exist for the path, but not for this method.
    MethodNotAllowed(Vec<Method>),
    /// No route.
    NotFound,
}

/// Routes and upstreams.
#[derive(Debug)]
pub struct Table {
    /// The most specific path first (`Pattern::specificity`), routes of one path together.
    routes: Vec<Arc<Route>>,
    /// By name.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// The config it was built from.
    pub config: GatewayConfig,
    /// Verifies access tokens, when `[auth]` is configured.
    pub verifier: Option<Arc<crate::auth::Verifier>>,
    /// The merged OpenAPI document, when `[openapi]` is configured.
    pub openapi: Option<Arc<crate::openapi::Merger>>,
    /// Aggregation endpoints.
    pub aggregates: Vec<Arc<crate::aggregate::Aggregate>>,
    /// The upstreams whose endpoints are trusted proxies (`server.trusted_upstreams`).
    trusted_upstreams: Vec<Arc<Upstream>>,
}

impl Table {
    /// Builds a table from a validated config. Upstreams and route faults found in `previous` keep
    /// their state (endpoint health, ejections, breaker counts are rebuilt only when the
    /// upstream's settings changed).
    pub fn build(config: GatewayConfig, previous: Option<&Table>, clock: &Clock) -> Self {
        let upstreams: BTreeMap<String, Arc<Upstream>> = config
            .upstreams
            .iter()
            .map(|(name, upstream)| {
                let old = previous.and_then(|p| p.upstreams.get(name));
                let kept = old.filter(|old| old.config == *upstream).cloned();
                let built = kept.unwrap_or_else(|| {
                    Arc::new(Upstream::new(
                        name,
                        upstream.clone(),
                        old.map(|o| &**o),
                        clock.clone(),
                    ))
                });
                (name.clone(), built)
            })
            .collect();
        let mut routes: Vec<Arc<Route>> = config
            .routes
            .iter()
            .filter_map(|route| {
                let upstream = upstreams.get(&route.upstream)?.clone();
                let faults = previous
                    .and_then(|p| p.route(&route.name))
                    .map(|r| r.faults.clone())
                    .unwrap_or_default();
                Some(Arc::new(Route::new(route, upstream, faults, &config)))
            })
            .collect();
        routes.sort_by(|a, b| {
            let key = |r: &Route| {
                (
                    r.path().specificity(),
                    r.path().as_str().to_owned(),
                    r.path().is_exact(),
                )
            };
            key(b).cmp(&key(a))
        });
        let verifier = config.auth.as_ref().map(|auth| {
            let kept = previous
                .and_then(|p| p.verifier.as_ref())
                .filter(|v| v.config == *auth);
            kept.cloned().unwrap_or_else(|| {
                Arc::new(crate::auth::Verifier::new(auth.clone(), clock.clone()))
            })
        });
        let openapi = config
            .openapi
            .as_ref()
            .map(|c| Arc::new(crate::openapi::Merger::new(c.clone())));
        let faults_of = |name: &str| {
            previous
                .and_then(|p| p.route(name))
                .map(|r| r.faults.clone())
                .unwrap_or_default()
        };
        let aggregates = config
            .aggregates
            .iter()
            .filter_map(|a| crate::aggregate::Aggregate::new(a, &config, &upstreams, faults_of))
            .map(Arc::new)
            .collect();
        let trusted_upstreams = config
            .server
            .trusted_upstreams
            .iter()
            .filter_map(|name| upstreams.get(name).cloned())
            .collect();
        Self {
            routes,
            upstreams,
            config,
            verifier,
            openapi,
            aggregates,
            trusted_upstreams,
        }
    }

    /// Whether a peer at `ip` is a trusted proxy, whose `X-Forwarded-For` names the client: in
    /// `server.trusted_proxies`, or the address of an endpoint of a `server.trusted_upstreams`
    /// upstream as the gateway knows them now (a storefront instance).
    pub fn trusts(&self, ip: &std::net::IpAddr) -> bool {
        self.config
            .server
            .trusted_proxies
            .iter()
            .any(|net| net.contains(ip))
            || self
                .trusted_upstreams
                .iter()
                .any(|u| u.endpoints().iter().any(|e| e.addr.ip() == *ip))
    }

    /// The route for `method` and `path`.
    pub fn find(&self, method: &Method, path: &str) -> Match<'_> {
        let mut allowed = Vec::new();
        // The most specific path that matches owns it: when its routes do not take this method,
        // that is a 405 listing theirs, never a fall through to a less specific route (a
        // catch-all `/`, say, must not answer `POST` on an `/api` path it knows nothing of).
        let mut owner: Option<&Pattern> = None;
        for route in self.routes.iter().filter(|r| r.path().matches(path)) {
            if owner.is_some_and(|owner| owner != route.path()) {
                break;
            }
            owner = Some(route.path());
            match route.methods() {
                None => return Match::Found(route),
                Some(methods) if methods.contains(method) => return Match::Found(route),
                Some(methods) => allowed.extend(methods.iter().cloned()),
            }
        }
        if allowed.is_empty() {
            Match::NotFound
        } else {
            Match::MethodNotAllowed(allowed)
        }
    }

    /// The aggregate serving `path` for `method`, and the path's `{id}`.
    pub fn aggregate<'p>(
        &self,
        method: &Method,
        path: &'p str,
    ) -> Option<(&Arc<crate::aggregate::Aggregate>, &'p str)> {
        if !matches!(*method, Method::GET | Method::HEAD) {
            return None;
        }
        self.aggregates
            .iter()
            .find_map(|a| Some((a, a.matches(path)?)))
    }

    /// A route by name, aggregates and their parts (`<aggregate>.<part>`) included.
    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| &*r.name == name).or_else(|| {
            self.aggregates.iter().find_map(|a| {
                std::iter::once(&a.route)
                    .chain(a.parts.iter().map(|p| &p.route))
                    .find(|r| &*r.name == name)
            })
        })
    }

    /// Every route, the most specific path first.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// What the OpenAPI merger reads of this table.
    pub fn routing(&self) -> crate::openapi::Routing<'_> {
        crate::openapi::Routing {
            routes: &self.routes,
            upstreams: &self.upstreams,
            aggregates: &self.aggregates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let config = GatewayConfig::parse(
            r#"
            [[routes]]
            name = "all"
            prefix = "/"
            upstream = "a"
            [[routes]]
            name = "products"
            prefix = "/api/v1/products"
            upstream = "a"
            rewrite = "/v1/products"
            [[routes]]
            name = "admin"
            prefix = "/api/v1/admin"
            methods = ["PUT", "DELETE"]
            upstream = "a"
            rewrite = "/v1/admin/"
            [upstreams.a]
            endpoints = ["127.0.0.1:1"]
            "#,
        )
        .unwrap();
        Table::build(config, None, &Clock::manual())
    }

    fn found(t: &Table, method: Method, path: &str) -> String {
        match t.find(&method, path) {
            Match::Found(route) => route.name.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn the_longest_prefix_wins_on_segment_boundaries() {
        let t = table();
        assert_eq!(found(&t, Method::GET, "/api/v1/products/7"), "products");
        assert_eq!(found(&t, Method::GET, "/api/v1/products"), "products");
        assert_eq!(found(&t, Method::GET, "/api/v1/productsx"), "all");
        assert_eq!(found(&t, Method::GET, "/"), "all");
    }

    #[test]
    fn methods_filter_routes() {
        let t = table();
        assert_eq!(found(&t, Method::PUT, "/api/v1/admin/stock/1"), "admin");
        assert_eq!(
            found(&t, Method::GET, "/api/v1/admin/stock/1"),
            "MethodNotAllowed([PUT, DELETE])",
            "the longest prefix owns the path: no fall through to the catch-all"
        );
    }

    #[test]
    fn method_not_allowed_lists_what_is() {
        let config = GatewayConfig::parse(
            "[[routes]]\nname = \"r\"\nprefix = \"/x\"\nmethods = [\"GET\"]\nupstream = \"a\"\n[upstreams.a]\nendpoints = [\"127.0.0.1:1\"]",
        )
        .unwrap();
        let t = Table::build(config, None, &Clock::manual());
        assert!(
            matches!(t.find(&Method::POST, "/x"), Match::MethodNotAllowed(m) if m == [Method::GET])
        );
        assert!(matches!(t.find(&Method::GET, "/y"), Match::NotFound));
    }

    #[test]
    fn exact_paths_own_their_path_and_list_only_its_methods() {
        let config = GatewayConfig::parse(
            r#"
            [[routes]]
            name = "all"
            prefix = "/"
            upstream = "a"
            [[routes]]
            name = "cart"
            prefix = "/api/v1/cart"
            exact = true
            methods = ["GET", "HEAD"]
            upstream = "a"
            [[routes]]
            name = "cart-empty"
            prefix = "/api/v1/cart"
            exact = true
            methods = ["DELETE"]
            upstream = "a"
            [[routes]]
            name = "items"
            prefix = "/api/v1/cart/items/{product_id}"
            exact = true
            methods = ["PUT", "DELETE"]
            upstream = "a"
            rewrite = "/v1/cart/items/{product_id}"
            [[routes]]
            name = "cart-other"
            prefix = "/api/v1/cart"
            methods = []
            upstream = "a"
            [upstreams.a]
            endpoints = ["127.0.0.1:1"]
            "#,
        )
        .unwrap();
        let t = Table::build(config, None, &Clock::manual());
        assert_eq!(found(&t, Method::GET, "/api/v1/cart"), "cart");
        assert_eq!(found(&t, Method::DELETE, "/api/v1/cart"), "cart-empty");
        assert_eq!(
            found(&t, Method::PUT, "/api/v1/cart"),
            "MethodNotAllowed([GET, HEAD, DELETE])"
        );
        assert_eq!(found(&t, Method::PUT, "/api/v1/cart/items/7"), "items");
        assert_eq!(
            found(&t, Method::GET, "/api/v1/cart/items/7"),
            "MethodNotAllowed([PUT, DELETE])",
            "only the item's own methods, not the cart's"
        );
        // A claiming route (no methods) keeps the rest of its prefix a 404, not the catch-all's.
        assert_eq!(found(&t, Method::GET, "/api/v1/cart/items"), "NotFound");
        assert_eq!(found(&t, Method::PUT, "/api/v1/cart/items/7/x"), "NotFound");
        assert_eq!(found(&t, Method::GET, "/api/v1/cartx"), "all");
        assert_eq!(
            t.route("items")
                .unwrap()
                .upstream_path("/api/v1/cart/items/7?q"),
            "/v1/cart/items/7?q"
        );
    }

    #[test]
    fn rewrites_replace_the_prefix_and_keep_the_rest() {
        let t = table();
        let products = t.route("products").unwrap();
        assert_eq!(
            products.upstream_path("/api/v1/products/7?x=1"),
            "/v1/products/7?x=1"
        );
        assert_eq!(
            products.upstream_path("/api/v1/products?q=a"),
            "/v1/products?q=a"
        );
        let admin = t.route("admin").unwrap();
        assert_eq!(
            admin.upstream_path("/api/v1/admin/stock/1"),
            "/v1/admin/stock/1"
        );
        assert_eq!(t.route("all").unwrap().upstream_path("/a?b"), "/a?b");
    }

    #[test]
    fn upstream_paths_map_back_to_public_paths() {
        let t = table();
        let products = t.route("products").unwrap();
        assert_eq!(
            products.public_path("/v1/products/{id}").as_deref(),
            Some("/api/v1/products/{id}")
        );
        assert_eq!(
            products.public_path("/v1/products").as_deref(),
            Some("/api/v1/products")
        );
        assert_eq!(products.public_path("/v1/productsx"), None);
        assert_eq!(products.public_path("/v1/categories"), None);
        let admin = t.route("admin").unwrap();
        assert!(admin.allows("put") && admin.allows("delete") && !admin.allows("get"));
        assert!(products.allows("get"), "no method filter");
    }

    #[test]
    fn a_reload_keeps_unchanged_upstreams() {
        let old = table();
        let new = Table::build(old.config.clone(), Some(&old), &Clock::manual());
        assert!(Arc::ptr_eq(&old.upstreams["a"], &new.upstreams["a"]));
    }
}
