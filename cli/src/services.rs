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

/// A public route: `/api<prefix>` on the gateway, sent to the service as `<rewrite>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicRoute {
    pub(crate) name: &'static str,
    pub(crate) prefix: &'static str,
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
            // An allow-list: each public auth operation by name. Anything else under
            // /api/v1/auth (service-token, for services inside only) reaches no route to identity.
            Self::Identity => &[
                PublicRoute {
                    name: "auth-register",
                    prefix: "/api/v1/auth/register",
                    methods: Some(&["POST"]),
                    rewrite: "/v1/auth/register",
                    policy: Public,
                    rate_limit: AUTH_LIMIT,
                },
                PublicRoute {
                    name: "auth-login",
                    prefix: "/api/v1/auth/login",
                    methods: Some(&["POST"]),
                    rewrite: "/v1/auth/login",
                    policy: Public,
                    rate_limit: AUTH_LIMIT,
                },
                PublicRoute {
                    name: "auth-refresh",
                    prefix: "/api/v1/auth/refresh",
                    methods: Some(&["POST"]),
                    rewrite: "/v1/auth/refresh",
                    policy: Public,
                    rate_limit: AUTH_LIMIT,
                },
                PublicRoute {
                    name: "auth-logout",
                    prefix: "/api/v1/auth/logout",
                    methods: Some(&["POST"]),
                    rewrite: "/v1/auth/logout",
                    policy: Public,
                    rate_limit: AUTH_LIMIT,
                },
                PublicRoute {
                    name: "auth-password",
                    prefix: "/api/v1/auth/password",
                    methods: Some(&["POST"]),
                    rewrite: "/v1/auth/password",
                    policy: User,
                    rate_limit: PASSWORD_LIMIT,
                },
                PublicRoute {
                    name: "me",
                    prefix: "/api/v1/me",
                    methods: READ,
                    rewrite: "/v1/me",
                    policy: User,
                    rate_limit: None,
                },
                PublicRoute {
                    name: "jwks",
                    prefix: "/.well-known/jwks.json",
                    methods: READ,
                    rewrite: "/.well-known/jwks.json",
                    policy: Public,
                    rate_limit: None,
                },
            ],
            Self::Catalog => &[
                PublicRoute {
                    name: "products",
                    prefix: "/api/v1/products",
                    methods: READ,
                    rewrite: "/v1/products",
                    policy: Public,
                    rate_limit: None,
                },
                PublicRoute {
                    name: "admin-products",
                    prefix: "/api/v1/admin/products",
                    methods: Some(&["POST", "PUT", "DELETE"]),
                    rewrite: "/v1/admin/products",
                    policy: Admin,
                    rate_limit: None,
                },
                PublicRoute {
                    name: "categories",
                    prefix: "/api/v1/categories",
                    methods: READ,
                    rewrite: "/v1/categories",
                    policy: Public,
                    rate_limit: None,
                },
            ],
            Self::Inventory => &[
                PublicRoute {
                    name: "availability",
                    prefix: "/api/v1/availability",
                    methods: READ,
                    rewrite: "/v1/availability",
                    policy: Public,
                    rate_limit: None,
                },
                PublicRoute {
                    name: "admin-stock",
                    prefix: "/api/v1/admin/stock",
                    methods: Some(&["PUT"]),
                    rewrite: "/v1/admin/stock",
                    policy: Admin,
                    rate_limit: None,
                },
            ],
            // Reading is cheap and pages poll it; changes are what a script would hammer.
            Self::Cart => &[
                PublicRoute {
                    name: "cart",
                    prefix: "/api/v1/cart",
                    methods: READ,
                    rewrite: "/v1/cart",
                    policy: User,
                    rate_limit: None,
                },
                PublicRoute {
                    name: "cart-changes",
                    prefix: "/api/v1/cart",
                    methods: Some(&["PUT", "DELETE"]),
                    rewrite: "/v1/cart",
                    policy: User,
                    rate_limit: CART_LIMIT,
                },
            ],
            Self::Payments => &[PublicRoute {
                name: "payment-methods",
                prefix: "/api/v1/payment-methods",
                methods: Some(&["GET", "HEAD", "POST"]),
                rewrite: "/v1/payment-methods",
                policy: User,
                rate_limit: CARD_LIMIT,
            }],
            // An order page polls its order until it settles: reads are not limited, checkouts are.
            Self::Orders => &[
                PublicRoute {
                    name: "orders",
                    prefix: "/api/v1/orders",
                    methods: READ,
                    rewrite: "/v1/orders",
                    policy: User,
                    rate_limit: None,
                },
                PublicRoute {
                    name: "place-order",
                    prefix: "/api/v1/orders",
                    methods: Some(&["POST"]),
                    rewrite: "/v1/orders",
                    policy: User,
                    rate_limit: ORDER_LIMIT,
                },
            ],
            Self::History => &[PublicRoute {
                name: "history",
                prefix: "/api/v1/history",
                methods: READ,
                rewrite: "/v1/history",
                policy: User,
                rate_limit: None,
            }],
            // Every path no `/api` route takes (the shortest prefix matches last). The pages ask
            // for sign-in themselves: the storefront calls the API with the shopper's token.
            Self::Storefront => &[PublicRoute {
                name: "storefront",
                prefix: "/",
                methods: None,
                rewrite: "/",
                policy: Public,
                rate_limit: None,
            }],
        }
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
            Self::Inventory | Self::Cart => &["catalog"],
            Self::Orders => &["cart", "catalog"],
            _ => &[],
        }
    }

    /// The neighbours it calls on internal endpoints (or whose event feed it reads), directly:
    /// `(config key, service)`.
    pub(crate) fn internal_neighbours(self) -> &'static [(&'static str, Service)] {
        match self {
            Self::Inventory | Self::Cart => &[("orders", Self::Orders)],
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
