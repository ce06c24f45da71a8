//! The registry of the services `souk` runs: one [`Spec`] per service, the only place that
//! says what a service is to the rest of the shop.
//!
//! A spec names the service, the routes the gateway gives it, where it keeps its data, whom it
//! calls and whose events it reads, and how it is wired into a run. `souk up` turns that wiring
//! into each process's environment, `souk monolith` into the same pairs of its in-process
//! configuration ([`Service::pairs`]: one source for both), `souk serve` runs it, and
//! `souk gateway-config` writes the deployments' gateway files from it. A service joins the shop
//! with its folder under `services/` and one entry in [`Service::ALL`].

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use futures::future::BoxFuture;
use souk_chassis::Env;
use souk_chassis::service::{Running, StartError, Wiring};

/// A service the shop is made of (the gateway excluded: it is the roof, not a stall). Cheap to
/// copy; known by its name, ordered as the registry lists it.
#[derive(Clone, Copy)]
pub(crate) struct Service(&'static Spec);

/// What the shop knows of one service.
pub(crate) struct Spec {
    /// Its name: config section, database file, log prefix, upstream name.
    name: &'static str,
    /// What it does, in a few words (`souk serve --help`).
    about: &'static str,
    /// The routes the gateway sends to it.
    routes: &'static [PublicRoute],
    /// Where it keeps its data, if it keeps any.
    storage: Option<Storage>,
    /// Whether it verifies callers' tokens itself (and so needs the JWKS URL).
    verifies_tokens: bool,
    /// The neighbours it calls on their public API, through the gateway (which balances over
    /// the healthy instances), by name: each is also the config key of its `ClientConfig`.
    public_neighbours: &'static [&'static str],
    /// The neighbours it calls on internal endpoints, or whose event feed it reads, directly
    /// at their first instance, by name (also the config key of each one's `ClientConfig`).
    internal_neighbours: &'static [&'static str],
    /// Whether its internal neighbours are event feeds it reads (and nothing else there).
    reads_feeds_only: bool,
    /// Secrets it keeps in files beside (not in) its database: `(config key, file name)`.
    key_files: &'static [(&'static str, &'static str)],
    /// Variables its own process needs beyond its configuration (`souk up` only).
    process_env: &'static [(&'static str, &'static str)],
    /// Its own wiring beyond what every service gets: `(config key, value)`.
    wiring: fn(&Facts<'_>) -> Vec<(String, String)>,
    /// Runs it: its crate's [`souk_chassis::service::Service`].
    runner: &'static dyn Runner,
}

/// What kind of store a service keeps its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storage {
    /// A SQL database (`database__url`): a SQLite file, or a PostgreSQL database.
    Sql,
    /// Keys and values (`store__url`): a SQLite file, or Redis.
    KeyValue,
}

impl Storage {
    /// The config key of its URL.
    fn key(self) -> &'static str {
        match self {
            Self::Sql => "database__url",
            Self::KeyValue => "store__url",
        }
    }
}

/// What a run of the shop tells its services: the same facts for `souk up` (each process's
/// environment) and `souk monolith` (its in-process configuration).
pub(crate) struct Facts<'a> {
    /// The gateway: the public API (for public neighbours and the storefront) and the JWKS.
    pub(crate) gateway: SocketAddr,
    /// The data dir, absolute: key files live there.
    pub(crate) data_dir: &'a Path,
    /// Where each service keeps its data.
    pub(crate) databases: &'a BTreeMap<Service, String>,
    /// Each calling service's secret at identity, made up for this run.
    pub(crate) secrets: &'a BTreeMap<Service, String>,
    /// Where the first instance of each service listens: internal neighbours are called there.
    /// Empty in the monolith, whose services call each other's routers.
    pub(crate) internal: &'a BTreeMap<Service, SocketAddr>,
    /// The key every storefront instance signs its forms' CSRF tokens with.
    pub(crate) csrf_secret: &'a str,
    /// The loopback address the storefront calls the gateway from (the one it believes).
    pub(crate) storefront_ip: IpAddr,
    /// Where the cart keeps its event bookkeeping.
    pub(crate) cart_events: &'a str,
    /// The prefix of the cart's keys on a shared Redis.
    pub(crate) cart_key_prefix: Option<String>,
}

/// A public route: `prefix` on the gateway (with `{name}` segments, and `exact` for one path
/// only), sent to the service as `rewrite`.
///
/// Operations that share a prefix but not their methods get exact routes, so a 405's `Allow`
/// lists the methods of that path only; a route with no methods (`CLAIM`) forwards nothing and
/// keeps the paths under its prefix that no other route takes the gateway's 404 problem instead
/// of a less specific route's answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicRoute {
    pub(crate) name: &'static str,
    pub(crate) prefix: &'static str,
    pub(crate) exact: bool,
    pub(crate) methods: Option<&'static [&'static str]>,
    pub(crate) rewrite: &'static str,
    /// Who may call it: checked by the gateway, and again by the service.
    pub(crate) policy: souk_gateway::config::Policy,
    /// Limits per client address and per user, if any.
    pub(crate) rate_limit: Option<souk_gateway::config::RateLimitConfig>,
}

/// Sign-in and sign-up: 10 at once and 30 a minute per address (identity limits each account too).
const AUTH_LIMIT: Option<souk_gateway::config::RateLimitConfig> =
    Some(souk_gateway::config::RateLimitConfig {
        client_per_minute: 30,
        client_burst: 10,
        user_per_minute: 0,
        user_burst: 0,
        shared: false,
    });

/// Password changes: a few per address and per user; identity counts them against the
/// account's sign-in throttle as well.
const PASSWORD_LIMIT: Option<souk_gateway::config::RateLimitConfig> =
    Some(souk_gateway::config::RateLimitConfig {
        client_per_minute: 30,
        client_burst: 10,
        user_per_minute: 6,
        user_burst: 3,
        shared: false,
    });

/// A shopper changes a cart a few times a minute; a script hammering it is cut off per user.
const CART_LIMIT: Option<souk_gateway::config::RateLimitConfig> =
    Some(souk_gateway::config::RateLimitConfig {
        client_per_minute: 0,
        client_burst: 0,
        user_per_minute: 1200,
        user_burst: 100,
        shared: false,
    });

/// Card testing (trying stolen numbers one after another) is cut off per user and per address.
const CARD_LIMIT: Option<souk_gateway::config::RateLimitConfig> =
    Some(souk_gateway::config::RateLimitConfig {
        client_per_minute: 60,
        client_burst: 20,
        user_per_minute: 20,
        user_burst: 10,
        shared: false,
    });

/// Checkouts per user: generous for a person, a wall for a script.
const ORDER_LIMIT: Option<souk_gateway::config::RateLimitConfig> =
    Some(souk_gateway::config::RateLimitConfig {
        client_per_minute: 0,
        client_burst: 0,
        user_per_minute: 600,
        user_burst: 60,
        shared: false,
    });

use souk_gateway::config::Policy::{Admin, Public, User};

const READ: Option<&[&str]> = Some(&["GET", "HEAD"]);
/// No method: the route only claims its prefix (see [`PublicRoute`]).
const CLAIM: Option<&[&str]> = Some(&[]);

/// A route on a prefix or an exact path, unlimited.
const fn route(
    name: &'static str,
    prefix: &'static str,
    exact: bool,
    methods: Option<&'static [&'static str]>,
    rewrite: &'static str,
    policy: souk_gateway::config::Policy,
) -> PublicRoute {
    PublicRoute {
        name,
        prefix,
        exact,
        methods,
        rewrite,
        policy,
        rate_limit: None,
    }
}

/// `route` with rate limits.
const fn limited(
    route: PublicRoute,
    rate_limit: Option<souk_gateway::config::RateLimitConfig>,
) -> PublicRoute {
    PublicRoute {
        rate_limit,
        ..route
    }
}

const EXACT: bool = true;
const PREFIX: bool = false;

/// An allow-list: each public auth operation by its exact path. Anything else under
/// /api/v1/auth (service-token, for services inside only) reaches no route to identity.
const IDENTITY_ROUTES: &[PublicRoute] = &[
    limited(
        route(
            "auth-register",
            "/api/v1/auth/register",
            EXACT,
            Some(&["POST"]),
            "/v1/auth/register",
            Public,
        ),
        AUTH_LIMIT,
    ),
    limited(
        route(
            "auth-login",
            "/api/v1/auth/login",
            EXACT,
            Some(&["POST"]),
            "/v1/auth/login",
            Public,
        ),
        AUTH_LIMIT,
    ),
    limited(
        route(
            "auth-refresh",
            "/api/v1/auth/refresh",
            EXACT,
            Some(&["POST"]),
            "/v1/auth/refresh",
            Public,
        ),
        AUTH_LIMIT,
    ),
    limited(
        route(
            "auth-logout",
            "/api/v1/auth/logout",
            EXACT,
            Some(&["POST"]),
            "/v1/auth/logout",
            Public,
        ),
        AUTH_LIMIT,
    ),
    limited(
        route(
            "auth-password",
            "/api/v1/auth/password",
            EXACT,
            Some(&["POST"]),
            "/v1/auth/password",
            User,
        ),
        PASSWORD_LIMIT,
    ),
    route("me", "/api/v1/me", PREFIX, READ, "/v1/me", User),
    route(
        "jwks",
        "/.well-known/jwks.json",
        PREFIX,
        READ,
        "/.well-known/jwks.json",
        Public,
    ),
];

const CATALOG_ROUTES: &[PublicRoute] = &[
    route(
        "products",
        "/api/v1/products",
        PREFIX,
        READ,
        "/v1/products",
        Public,
    ),
    route(
        "admin-products",
        "/api/v1/admin/products",
        EXACT,
        Some(&["POST"]),
        "/v1/admin/products",
        Admin,
    ),
    route(
        "admin-product",
        "/api/v1/admin/products/{id}",
        EXACT,
        Some(&["PUT", "DELETE"]),
        "/v1/admin/products/{id}",
        Admin,
    ),
    route(
        "categories",
        "/api/v1/categories",
        PREFIX,
        READ,
        "/v1/categories",
        Public,
    ),
];

const INVENTORY_ROUTES: &[PublicRoute] = &[
    route(
        "availability",
        "/api/v1/availability",
        PREFIX,
        READ,
        "/v1/availability",
        Public,
    ),
    route(
        "admin-stock",
        "/api/v1/admin/stock/{sku}",
        EXACT,
        Some(&["GET", "HEAD", "PUT"]),
        "/v1/admin/stock/{sku}",
        Admin,
    ),
    route(
        "admin-stock-adjustments",
        "/api/v1/admin/stock/{sku}/adjustments",
        EXACT,
        Some(&["POST"]),
        "/v1/admin/stock/{sku}/adjustments",
        Admin,
    ),
];

// Reading is cheap and pages poll it; changes are what a script would hammer.
const CART_ROUTES: &[PublicRoute] = &[
    route("cart", "/api/v1/cart", EXACT, READ, "/v1/cart", User),
    limited(
        route(
            "cart-empty",
            "/api/v1/cart",
            EXACT,
            Some(&["DELETE"]),
            "/v1/cart",
            User,
        ),
        CART_LIMIT,
    ),
    limited(
        route(
            "cart-changes",
            "/api/v1/cart/items/{product_id}",
            EXACT,
            Some(&["PUT", "DELETE"]),
            "/v1/cart/items/{product_id}",
            User,
        ),
        CART_LIMIT,
    ),
];

// Adding cards is what card testing hammers; reading them is not limited.
const PAYMENTS_ROUTES: &[PublicRoute] = &[
    route(
        "payment-methods",
        "/api/v1/payment-methods",
        EXACT,
        READ,
        "/v1/payment-methods",
        User,
    ),
    limited(
        route(
            "add-payment-method",
            "/api/v1/payment-methods",
            EXACT,
            Some(&["POST"]),
            "/v1/payment-methods",
            User,
        ),
        CARD_LIMIT,
    ),
    route(
        "payment-method",
        "/api/v1/payment-methods/{id}",
        EXACT,
        READ,
        "/v1/payment-methods/{id}",
        User,
    ),
];

// An order page polls its order until it settles: reads are not limited, checkouts are.
const ORDERS_ROUTES: &[PublicRoute] = &[
    route("orders", "/api/v1/orders", EXACT, READ, "/v1/orders", User),
    limited(
        route(
            "place-order",
            "/api/v1/orders",
            EXACT,
            Some(&["POST"]),
            "/v1/orders",
            User,
        ),
        ORDER_LIMIT,
    ),
    route(
        "order",
        "/api/v1/orders/{id}",
        EXACT,
        READ,
        "/v1/orders/{id}",
        User,
    ),
];

const HISTORY_ROUTES: &[PublicRoute] = &[route(
    "history",
    "/api/v1/history",
    PREFIX,
    READ,
    "/v1/history",
    User,
)];

// Every path but the API's (the least specific prefix matches last). The pages ask for
// sign-in themselves: the storefront calls the API with the shopper's token.
const STOREFRONT_ROUTES: &[PublicRoute] = &[
    route("storefront", "/", PREFIX, None, "/", Public),
    // The pages take every path but the API's: an `/api` path no route above takes is the
    // gateway's 404 problem, not a storefront page (a claim forwards nothing).
    route("api", "/api", PREFIX, CLAIM, "/api", Public),
];

/// No wiring beyond what every service gets.
fn common(_: &Facts<'_>) -> Vec<(String, String)> {
    Vec::new()
}

const IDENTITY: Spec = Spec {
    name: "identity",
    about: "Accounts, sign-in, signing keys",
    routes: IDENTITY_ROUTES,
    storage: Some(Storage::Sql),
    verifies_tokens: false,
    public_neighbours: &[],
    internal_neighbours: &[],
    reads_feeds_only: false,
    key_files: &[("key_file", "identity.key")],
    process_env: &[crate::up::ARGON2_FRIENDLY_MALLOC],
    wiring: |facts| {
        // Every calling service: its secret, and whom it may ask tokens for.
        let mut pairs = Vec::new();
        for (caller, secret) in facts.secrets {
            let section = format!("services__{}", caller.name());
            pairs.push((format!("{section}__secret"), secret.clone()));
            pairs.push((
                format!("{section}__audiences"),
                caller.token_audiences().join(","),
            ));
            pairs.push((
                format!("{section}__feeds"),
                caller.feed_audiences().join(","),
            ));
        }
        pairs
    },
    runner: &Of::<souk_identity::Service>(PhantomData),
};

const CATALOG: Spec = Spec {
    name: "catalog",
    about: "Products, categories, prices and search",
    routes: CATALOG_ROUTES,
    storage: Some(Storage::Sql),
    verifies_tokens: true,
    public_neighbours: &[],
    internal_neighbours: &[],
    reads_feeds_only: false,
    key_files: &[],
    process_env: &[],
    wiring: common,
    runner: &Of::<souk_catalog::Service>(PhantomData),
};

const INVENTORY: Spec = Spec {
    name: "inventory",
    about: "Stock per product and reservations per order",
    routes: INVENTORY_ROUTES,
    storage: Some(Storage::Sql),
    verifies_tokens: true,
    public_neighbours: &[],
    // Orders' events; the catalog's product events and, to be ready, its product list.
    internal_neighbours: &["orders", "catalog"],
    reads_feeds_only: true,
    key_files: &[],
    process_env: &[],
    wiring: common,
    runner: &Of::<souk_inventory::Service>(PhantomData),
};

const CART: Spec = Spec {
    name: "cart",
    about: "One cart per shopper",
    routes: CART_ROUTES,
    storage: Some(Storage::KeyValue),
    verifies_tokens: true,
    public_neighbours: &["catalog"],
    internal_neighbours: &["orders"],
    reads_feeds_only: true,
    key_files: &[],
    process_env: &[],
    wiring: |facts| {
        let mut pairs = vec![(
            "events_database__url".to_owned(),
            facts.cart_events.to_owned(),
        )];
        if let Some(prefix) = &facts.cart_key_prefix {
            pairs.push(("store__key_prefix".to_owned(), prefix.clone()));
        }
        pairs
    },
    runner: &Of::<souk_cart::Service>(PhantomData),
};

const PAYMENTS: Spec = Spec {
    name: "payments",
    about: "Cards (as tokens), one payment per order, refunds, the simulated processor",
    routes: PAYMENTS_ROUTES,
    storage: Some(Storage::Sql),
    verifies_tokens: true,
    public_neighbours: &[],
    internal_neighbours: &[],
    reads_feeds_only: false,
    key_files: &[("processor__vault_key_file", "payments-vault.key")],
    process_env: &[],
    wiring: common,
    runner: &Of::<souk_payments::Service>(PhantomData),
};

const ORDERS: Spec = Spec {
    name: "orders",
    about: "Checkout: orders and the saga that reserves, charges and confirms them",
    routes: ORDERS_ROUTES,
    storage: Some(Storage::Sql),
    verifies_tokens: true,
    public_neighbours: &["cart", "catalog"],
    internal_neighbours: &["inventory", "payments"],
    reads_feeds_only: false,
    key_files: &[],
    process_env: &[],
    wiring: common,
    runner: &Of::<souk_orders::Service>(PhantomData),
};

const HISTORY: Spec = Spec {
    name: "history",
    about: "Purchase history, projected from orders' and payments' events",
    routes: HISTORY_ROUTES,
    storage: Some(Storage::Sql),
    verifies_tokens: true,
    public_neighbours: &[],
    internal_neighbours: &["orders", "payments"],
    reads_feeds_only: true,
    key_files: &[],
    process_env: &[],
    wiring: common,
    runner: &Of::<souk_history::Service>(PhantomData),
};

const STOREFRONT: Spec = Spec {
    name: "storefront",
    about: "The web shop: server-rendered pages, a client of the gateway's public API",
    routes: STOREFRONT_ROUTES,
    storage: None,
    verifies_tokens: false,
    public_neighbours: &[],
    internal_neighbours: &[],
    reads_feeds_only: false,
    key_files: &[],
    process_env: &[],
    wiring: |facts| {
        vec![
            // The public API, exactly as any client reaches it.
            (
                "gateway__url".to_owned(),
                format!("http://{}", facts.gateway),
            ),
            ("csrf_secret".to_owned(), facts.csrf_secret.to_owned()),
            // It calls the gateway from its own address, which the gateway believes.
            ("source_ip".to_owned(), facts.storefront_ip.to_string()),
        ]
    },
    runner: &Of::<souk_storefront::Service>(PhantomData),
};

impl Service {
    /// Every service, in start order.
    pub(crate) const ALL: [Service; 8] = [
        Service(&IDENTITY),
        Service(&CATALOG),
        Service(&INVENTORY),
        Service(&CART),
        Service(&PAYMENTS),
        Service(&ORDERS),
        Service(&HISTORY),
        Service(&STOREFRONT),
    ];

    /// Identity: the gateway serves its JWKS and checks tokens with it.
    pub(crate) const IDENTITY: Service = Service(&IDENTITY);
    /// The catalog: the product page aggregate's required part.
    pub(crate) const CATALOG: Service = Service(&CATALOG);
    /// Inventory: the product page aggregate's optional part.
    pub(crate) const INVENTORY: Service = Service(&INVENTORY);
    /// The storefront: the one upstream whose `X-Forwarded-For` the gateway believes.
    pub(crate) const STOREFRONT: Service = Service(&STOREFRONT);

    /// Its name: config section, database file, log prefix, upstream name.
    pub(crate) fn name(self) -> &'static str {
        self.0.name
    }

    /// What it does, in a few words.
    pub(crate) fn about(self) -> &'static str {
        self.0.about
    }

    /// Parses a service name as users type it.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The routes the gateway sends to it.
    pub(crate) fn routes(self) -> &'static [PublicRoute] {
        self.0.routes
    }

    /// The port it listens on unless told otherwise (its own config's default): what the
    /// deployments' gateway dials and their manifests expose.
    pub(crate) fn port(self) -> u16 {
        self.0.runner.port()
    }

    /// The variable that sets its listen address.
    pub(crate) fn listen_var(self) -> String {
        self.var("listen")
    }

    /// Where it keeps its data, if it keeps any (the storefront owns none).
    pub(crate) fn storage(self) -> Option<Storage> {
        self.0.storage
    }

    /// Whether it publishes an OpenAPI document for the gateway's merged one.
    pub(crate) fn has_openapi(self) -> bool {
        self.0.runner.has_openapi()
    }

    /// Variables its own process needs beyond its configuration.
    pub(crate) fn process_env(self) -> &'static [(&'static str, &'static str)] {
        self.0.process_env
    }

    /// The services whose internal endpoints it calls with service tokens: identity lets it ask
    /// for tokens addressed to them.
    pub(crate) fn token_audiences(self) -> Vec<&'static str> {
        match self.0.reads_feeds_only {
            true => Vec::new(),
            false => self.0.internal_neighbours.to_vec(),
        }
    }

    /// The services whose event feed it reads, and nothing else there: identity gives it only
    /// tokens narrowed to `events:read` for them (history reads payments' feed, and so cannot
    /// charge).
    pub(crate) fn feed_audiences(self) -> Vec<&'static str> {
        match self.0.reads_feeds_only {
            true => self.0.internal_neighbours.to_vec(),
            false => Vec::new(),
        }
    }

    /// Whether it calls identity for service tokens (and so has a secret there).
    pub(crate) fn calls_internally(self) -> bool {
        !self.0.internal_neighbours.is_empty()
    }

    /// The variable that sets `key` of its config (`SOUK_ORDERS__CART__URL`).
    pub(crate) fn var(self, key: &str) -> String {
        format!(
            "SOUK_{}__{}",
            self.name().to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    }

    /// Its configuration for a run, as `(variable, value)` pairs: where its data is, where its
    /// neighbours and the JWKS are, its secrets. `souk up` gives them to its process as
    /// environment variables, `souk monolith` reads its in-process configuration from them.
    pub(crate) fn pairs(self, facts: &Facts<'_>) -> Vec<(String, String)> {
        let spec = self.0;
        let mut pairs = Vec::new();
        if let (Some(storage), Some(url)) = (spec.storage, facts.databases.get(&self)) {
            pairs.push((storage.key().to_owned(), url.clone()));
        }
        if spec.verifies_tokens {
            // Through the gateway: one stable address, whichever identity instances run.
            let jwks = format!("http://{}/.well-known/jwks.json", facts.gateway);
            pairs.push(("auth__jwks_url".to_owned(), jwks));
        }
        for key in spec.public_neighbours {
            // Through the gateway: it balances over the instances that are healthy now.
            pairs.push((
                format!("{key}__url"),
                format!("http://{}/api", facts.gateway),
            ));
        }
        for key in spec.internal_neighbours {
            // Internal endpoints and event feeds are not on the gateway: the first instance.
            let neighbour = Self::parse(key).and_then(|n| facts.internal.get(&n));
            if let Some(addr) = neighbour {
                pairs.push((format!("{key}__url"), format!("http://{addr}")));
            }
        }
        if let Some(secret) = facts.secrets.get(&self) {
            pairs.push(("service_token__client_secret".to_owned(), secret.clone()));
            if let Some(identity) = facts.internal.get(&Self::IDENTITY) {
                let url = format!("http://{identity}");
                pairs.push(("service_token__identity__url".to_owned(), url));
            }
        }
        for (key, file) in spec.key_files {
            let path = facts.data_dir.join(file).display().to_string();
            pairs.push(((*key).to_owned(), path));
        }
        pairs.extend((spec.wiring)(facts));
        pairs
            .into_iter()
            .map(|(key, value)| (self.var(&key), value))
            .collect()
    }

    /// Runs it in this process until SIGTERM or Ctrl-C: what `souk serve` and its own binary do.
    pub(crate) fn serve(self) -> ExitCode {
        self.0.runner.serve()
    }

    /// Starts it in this process on `wiring`, configured by `env`, without serving it.
    pub(crate) fn launch(
        self,
        env: Env,
        wiring: Wiring,
    ) -> BoxFuture<'static, Result<Running, StartError>> {
        self.0.runner.launch(env, wiring)
    }
}

impl PartialEq for Service {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Service {}

impl PartialOrd for Service {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// In start order: what the registry lists first comes first everywhere (the route table too).
impl Ord for Service {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let position = |s: &Self| Self::ALL.iter().position(|t| t.name() == s.name());
        position(self).cmp(&position(other))
    }
}

impl std::hash::Hash for Service {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the registry does with a service's crate, whatever its type.
trait Runner: Sync {
    fn port(&self) -> u16;
    fn has_openapi(&self) -> bool;
    fn serve(&self) -> ExitCode;
    fn launch(&self, env: Env, wiring: Wiring) -> BoxFuture<'static, Result<Running, StartError>>;
    /// Its configuration's defaults, as JSON.
    #[cfg(test)]
    fn defaults(&self) -> serde_json::Value;
}

/// The [`Runner`] of the service `S`.
struct Of<S>(PhantomData<fn() -> S>);

impl<S: souk_chassis::service::Service> Runner for Of<S> {
    fn port(&self) -> u16 {
        souk_chassis::service::ServiceConfig::listen(&S::Config::default()).port()
    }

    fn has_openapi(&self) -> bool {
        S::OPENAPI.is_some()
    }

    fn serve(&self) -> ExitCode {
        souk_chassis::server::run_main(S::NAME, |env| async move {
            souk_chassis::service::serve::<S>(&env).await
        })
    }

    fn launch(&self, env: Env, wiring: Wiring) -> BoxFuture<'static, Result<Running, StartError>> {
        Box::pin(async move {
            let config = S::load(&env)?;
            souk_chassis::service::launch::<S>(config, &wiring).await
        })
    }

    #[cfg(test)]
    fn defaults(&self) -> serde_json::Value {
        serde_json::to_value(S::Config::default()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config keys of every neighbour `service` dials, with the neighbour.
    fn dialled(service: Service) -> Vec<(String, Service)> {
        let spec = service.0;
        let mut keys: Vec<(String, Service)> = spec
            .public_neighbours
            .iter()
            .chain(spec.internal_neighbours)
            .filter_map(|name| Some(((*name).to_owned(), Service::parse(name)?)))
            .collect();
        if service.calls_internally() {
            keys.push(("service_token__identity".to_owned(), Service::IDENTITY));
        }
        keys
    }

    fn port_of(url: &str) -> Option<u16> {
        url::Url::parse(url).ok()?.port()
    }

    /// A service dials each neighbour at the neighbour's own port: by default (a service run
    /// alone), in Compose and in Kubernetes — the registry's ports are each service's own
    /// default, so a port changed in one place and not the others fails here.
    #[test]
    fn callers_and_the_deployments_dial_each_neighbour_at_its_port() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let compose = std::fs::read_to_string(root.join("deploy/compose.yaml")).unwrap();
        for service in Service::ALL {
            let defaults = service.0.runner.defaults();
            let manifest = root.join(format!("deploy/k8s/base/{}.yaml", service.name()));
            let k8s = std::fs::read_to_string(&manifest).unwrap_or_default();
            for (key, neighbour) in dialled(service) {
                let at = format!("{}: {key}", service.name());
                let pointer = format!("/{}/url", key.replace("__", "/"));
                let url = defaults.pointer(&pointer).and_then(|u| u.as_str());
                // A public neighbour may be dialled through the gateway's `/api` instead.
                let through_gateway = url.is_some_and(|u| u.ends_with("/api"));
                if !through_gateway {
                    assert_eq!(
                        url.and_then(port_of),
                        Some(neighbour.port()),
                        "{at} default {url:?}"
                    );
                }
                let var = service.var(&format!("{key}__url"));
                // Compose: `VAR: "url"`; Kubernetes: `- name: VAR` then `value: "url"`.
                let in_compose = compose
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(&format!("{var}:")));
                let in_k8s = k8s
                    .lines()
                    .skip_while(|l| l.trim() != format!("- name: {var}"))
                    .nth(1)
                    .and_then(|l| l.trim().strip_prefix("value:"));
                for (deployment, value) in [("compose.yaml", in_compose), ("k8s", in_k8s)] {
                    let Some(value) = value else { continue };
                    let url = value.trim().trim_matches('"');
                    let host = url::Url::parse(url)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_owned));
                    // Deployments dial a neighbour by its name there (or through the gateway).
                    if host.as_deref() == Some(neighbour.name()) {
                        assert_eq!(
                            port_of(url),
                            Some(neighbour.port()),
                            "{at} in {deployment}: {url}"
                        );
                    }
                }
            }
        }
    }

    /// The lines of service `name`'s block in compose.yaml (indented under `  name:`).
    fn compose_block(compose: &str, name: &str) -> String {
        let header = format!("  {name}:");
        compose
            .lines()
            .skip_while(|line| *line != header)
            .skip(1)
            .take_while(|line| line.is_empty() || line.starts_with("   "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Each service listens where the registry (its own default) says, in its image, in Compose
    /// and in Kubernetes: the ports written there by hand are held to it.
    #[test]
    fn the_deployments_listen_at_the_registry_ports() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
        let (dockerfile, compose) = (
            read("deploy/docker/Dockerfile"),
            read("deploy/compose.yaml"),
        );
        let numbers_after = |text: &str, marker: &str| -> Vec<u16> {
            text.match_indices(marker)
                .filter_map(|(at, _)| {
                    let rest = &text[at + marker.len()..];
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().ok()
                })
                .collect()
        };
        for service in Service::ALL {
            let (name, port) = (service.name(), service.port());
            // The image: its listen address, health check and EXPOSE.
            let listen = format!("SOUK_{}__LISTEN=0.0.0.0:", name.to_ascii_uppercase());
            assert_eq!(
                numbers_after(&dockerfile, &listen),
                [port],
                "{name}: Dockerfile listen"
            );
            // Compose: its health check, in its own block.
            let block = compose_block(&compose, name);
            let checked = numbers_after(&block, "http://127.0.0.1:");
            assert!(
                !checked.is_empty() && checked.iter().all(|p| *p == port),
                "{name}: compose health check {checked:?}"
            );
            // Kubernetes: the container's port, its listen address and its Services.
            let manifest = read(&format!("deploy/k8s/base/{name}.yaml"));
            for marker in ["containerPort: ", "value: \"0.0.0.0:", "\n      port: "] {
                let found = numbers_after(&manifest, marker);
                assert!(
                    !found.is_empty() && found.iter().all(|p| *p == port),
                    "{name}.yaml {marker:?}: {found:?}"
                );
            }
        }
    }

    /// The check above reads what it means to: a service dialling a neighbour it does not
    /// name would make it vacuous.
    #[test]
    fn every_calling_service_dials_someone() {
        let dialling: Vec<_> = Service::ALL
            .into_iter()
            .filter(|s| !dialled(*s).is_empty())
            .map(Service::name)
            .collect();
        assert_eq!(dialling, ["inventory", "cart", "orders", "history"]);
    }

    /// Every folder under `services/` is a service of the registry (the gateway, the roof, is
    /// none), and every service of the registry has its folder: a service cannot be added to
    /// one and forgotten in the other.
    #[test]
    fn the_registry_names_every_service_folder() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../services");
        let mut folders: Vec<String> = std::fs::read_dir(&root)
            .expect("services/ is readable")
            .filter_map(|entry| {
                let entry = entry.ok()?;
                entry
                    .path()
                    .join("Cargo.toml")
                    .is_file()
                    .then(|| entry.file_name().to_string_lossy().into_owned())
            })
            .filter(|name| name != "gateway")
            .collect();
        folders.sort();
        let mut registered: Vec<String> =
            Service::ALL.iter().map(|s| s.name().to_owned()).collect();
        registered.sort();
        assert_eq!(registered, folders, "Service::ALL against services/*");
        for service in Service::ALL {
            assert_eq!(Service::parse(service.name()), Some(service));
        }
    }
}
