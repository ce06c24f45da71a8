//! souk's API gateway: the shop's one way in.
//!
//! A streaming reverse proxy on hyper: routes by path prefix (and method) to named upstreams,
//! balances over their endpoints (power of two choices or round robin), checks their health
//! actively and ejects outliers passively, retries safely within a budget, breaks circuits, sheds
//! load beyond a concurrency limit, injects faults for chaos runs, and reports it all on an admin
//! listener. It never parses a service's payload, except to check that an aggregation endpoint's
//! parts are JSON.

pub mod access_log;
pub mod admin;
pub mod aggregate;
pub mod auth;
pub mod body;
pub mod checks;
pub mod clock;
pub mod config;
pub mod connections;
pub mod encoding;
pub mod fault;
pub mod headers;
pub mod limit;
pub mod metrics;
pub mod openapi;
pub mod pattern;
pub mod pool;
pub mod proxy;
pub mod route;
pub mod server;
pub(crate) mod spans;
pub mod table;
pub mod target;
pub mod traces;
pub mod upstream;

pub use config::GatewayConfig;
pub use server::{Running, StartError, start, start_with};
pub use upstream::InProcess;

/// The service's name.
pub const NAME: &str = "gateway";

/// The variable holding the admin API's bearer token (it wins over `server.admin_token_file`).
pub const ADMIN_TOKEN_VAR: &str = "SOUK_GATEWAY_ADMIN_TOKEN";
