//! The services `souk` runs, and the public routes the gateway gives each of them.
//!
//! This is the one list to extend when a service joins the shop: `souk up`, `souk serve` and the
//! generated gateway configuration all read it.

/// A service the shop is made of (the gateway excluded: it is the roof, not a stall).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub(crate) enum Service {
    /// Accounts, sign-in, signing keys.
    Identity,
    /// Products, categories, prices and search.
    Catalog,
    /// Stock per product and reservations per order.
    Inventory,
    /// One cart per shopper.
    Cart,
    /// Cards (as tokens), one payment per order, refunds, the simulated processor.
    Payments,
    /// Checkout: orders and the saga that reserves, charges and confirms them.
    Orders,
    /// Purchase history, projected from orders' and payments' events.
    History,
    /// The web shop: server-rendered pages, a client of the gateway's public API.
    Storefront,
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

impl Service {
    /// Every service, in start order.
    pub(crate) const ALL: [Service; 8] = [
        Service::Identity,
        Service::Catalog,
        Service::Inventory,
        Service::Cart,
        Service::Payments,
        Service::Orders,
        Service::History,
        Service::Storefront,
    ];

    /// Its name: config section, database file, log prefix, upstream name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Catalog => "catalog",
            Self::Inventory => "inventory",
            Self::Cart => "cart",
            Self::Payments => "payments",
            Self::Orders => "orders",
            Self::History => "history",
            Self::Storefront => "storefront",
        }
    }

    /// Parses a service name as users type it.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The routes the gateway sends to it.
    pub(crate) fn routes(self) -> &'static [PublicRoute] {
        match self {
            Self::Identity => IDENTITY_ROUTES,
            Self::Catalog => CATALOG_ROUTES,
            Self::Inventory => INVENTORY_ROUTES,
            Self::Cart => CART_ROUTES,
            Self::Payments => PAYMENTS_ROUTES,
            Self::Orders => ORDERS_ROUTES,
            Self::History => HISTORY_ROUTES,
            Self::Storefront => STOREFRONT_ROUTES,
        }
    }

    /// The port it listens on unless told otherwise (its own config's default): what the
    /// deployments' gateway dials and their manifests expose.
    pub(crate) fn port(self) -> u16 {
        let listen = match self {
            Self::Identity => souk_identity::Config::default().listen,
            Self::Catalog => souk_catalog::Config::default().listen,
            Self::Inventory => souk_inventory::Config::default().listen,
            Self::Cart => souk_cart::Config::default().listen,
            Self::Payments => souk_payments::Config::default().listen,
            Self::Orders => souk_orders::Config::default().listen,
            Self::History => souk_history::Config::default().listen,
            Self::Storefront => souk_storefront::Config::default().listen,
        };
        listen.port()
    }

    /// The variable that sets its listen address.
    pub(crate) fn listen_var(self) -> String {
        format!("SOUK_{}__LISTEN", self.name().to_ascii_uppercase())
    }

    /// Whether it verifies callers' tokens itself (and so needs the JWKS URL).
    pub(crate) fn verifies_tokens(self) -> bool {
        !matches!(self, Self::Identity | Self::Storefront)
    }

    /// Whether it keeps data (and so gets a database); the storefront owns none.
    pub(crate) fn has_database(self) -> bool {
        !matches!(self, Self::Storefront)
    }

    /// Whether it publishes an OpenAPI document for the gateway's merged one.
    pub(crate) fn has_openapi(self) -> bool {
        !matches!(self, Self::Storefront)
    }

    /// The neighbours it calls on their public API, through the gateway (which balances over the
    /// healthy instances): each is the config key of a `ClientConfig`.
    pub(crate) fn public_neighbours(self) -> &'static [&'static str] {
        match self {
            Self::Cart => &["catalog"],
            Self::Orders => &["cart", "catalog"],
            _ => &[],
        }
    }

    /// The neighbours it calls on internal endpoints (or whose event feed it reads), directly:
    /// `(config key, service)`. Inventory reads the catalog's product events and, to be ready,
    /// its product list there too: the gateway starts only once every service is ready.
    pub(crate) fn internal_neighbours(self) -> &'static [(&'static str, Service)] {
        match self {
            Self::Inventory => &[("orders", Self::Orders), ("catalog", Self::Catalog)],
            Self::Cart => &[("orders", Self::Orders)],
            Self::Orders => &[("inventory", Self::Inventory), ("payments", Self::Payments)],
            Self::History => &[("orders", Self::Orders), ("payments", Self::Payments)],
            _ => &[],
        }
    }

    /// The services whose internal endpoints it calls with service tokens: identity lets it ask
    /// for tokens addressed to them.
    pub(crate) fn token_audiences(self) -> Vec<&'static str> {
        match self.reads_feeds_only() {
            true => Vec::new(),
            false => self.neighbour_names(),
        }
    }

    /// The services whose event feed it reads, and nothing else there: identity gives it only
    /// tokens narrowed to `events:read` for them (history reads payments' feed, and so cannot
    /// charge).
    pub(crate) fn feed_audiences(self) -> Vec<&'static str> {
        match self.reads_feeds_only() {
            true => self.neighbour_names(),
            false => Vec::new(),
        }
    }

    /// Whether its internal neighbours are event feeds it consumes (not endpoints it calls).
    fn reads_feeds_only(self) -> bool {
        matches!(self, Self::Inventory | Self::Cart | Self::History)
    }

    fn neighbour_names(self) -> Vec<&'static str> {
        self.internal_neighbours()
            .iter()
            .map(|(_, service)| service.name())
            .collect()
    }

    /// The variable that sets `key` of its config (`SOUK_ORDERS__CART__URL`).
    pub(crate) fn var(self, key: &str) -> String {
        format!(
            "SOUK_{}__{}",
            self.name().to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    }

    /// The variable that sets where it fetches the JWKS.
    pub(crate) fn jwks_var(self) -> String {
        format!("SOUK_{}__AUTH__JWKS_URL", self.name().to_ascii_uppercase())
    }

    /// The variable that sets its database URL (the cart's store: SQLite or Redis).
    pub(crate) fn database_var(self) -> String {
        match self {
            Self::Cart => "SOUK_CART__STORE__URL".to_owned(),
            _ => format!("SOUK_{}__DATABASE__URL", self.name().to_ascii_uppercase()),
        }
    }
}

/// Runs `service` in this process until SIGTERM or Ctrl-C (what `souk serve` and each service's
/// own binary do).
pub(crate) fn serve(service: Service) -> std::process::ExitCode {
    match service {
        Service::Identity => {
            souk_chassis::server::run_main(souk_identity::NAME, |env| async move {
                souk_identity::serve_from_env(&env).await
            })
        }
        Service::Catalog => souk_chassis::server::run_main(souk_catalog::NAME, |env| async move {
            souk_catalog::serve_from_env(&env).await
        }),
        Service::Inventory => {
            souk_chassis::server::run_main(souk_inventory::NAME, |env| async move {
                souk_inventory::serve_from_env(&env).await
            })
        }
        Service::Cart => souk_chassis::server::run_main(souk_cart::NAME, |env| async move {
            souk_cart::serve_from_env(&env).await
        }),
        Service::Payments => {
            souk_chassis::server::run_main(souk_payments::NAME, |env| async move {
                souk_payments::serve_from_env(&env).await
            })
        }
        Service::Orders => souk_chassis::server::run_main(souk_orders::NAME, |env| async move {
            souk_orders::serve_from_env(&env).await
        }),
        Service::History => souk_chassis::server::run_main(souk_history::NAME, |env| async move {
            souk_history::serve_from_env(&env).await
        }),
        Service::Storefront => {
            souk_chassis::server::run_main(souk_storefront::NAME, |env| async move {
                souk_storefront::serve_from_env(&env).await
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
