//! souk's chassis: the infrastructure every service stands on, and nothing of any service's domain.
//!
//! - [`client`]: calling another service over HTTP or in-process, with a deadline;
//! - [`auth`]: verifying callers' access tokens inside a service (defence in depth);
//! - [`config`]: layered typed configuration (defaults < file < `SOUK_` environment), secrets;
//! - [`telemetry`]: logs and traces (OTLP when configured), W3C trace context;
//! - [`http`]: the standard middleware stack and a service's operational routes;
//! - [`problem`] and [`extract`]: RFC 9457 errors and extractors that answer in that format;
//! - [`health`] and [`metrics`]: `/healthz`, `/readyz`, `/metrics`;
//! - [`server`]: serving with graceful shutdown;
//! - [`crash`]: named crash points that tests arm to kill a process at a chosen moment;
//! - [`db`]: SQLite/PostgreSQL pools and embedded migrations;
//! - [`events`]: the outbox, its feed and NATS relay, and consumers with inbox and dead letters;
//! - [`pagination`]: the `limit`/`cursor` list convention;
//! - [`private`] and [`seal`]: data only its owner reads (`0700`/`0600`), secrets sealed at rest;
//! - `test_util` (feature `test-util`): the integration-test harness.

pub mod auth;
pub mod client;
pub mod config;
pub mod crash;
pub mod db;
pub mod events;
pub mod extract;
pub mod health;
pub mod http;
pub mod lifeline;
pub mod linger;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod private;
pub mod problem;
pub mod seal;
pub mod server;
pub mod service;
pub mod telemetry;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod time;

/// mimalloc for every binary built on the chassis (the services, the gateway, `souk`, tests):
/// requests allocate many small, short-lived buffers, and glibc's malloc and free took 8–9 % of
/// the CPU in profiles of the gateway and of the monolith (`bench/results/cost.md`). Built
/// without transparent huge pages (`no_thp`): with them, mimalloc's eagerly committed arenas
/// came back as 2 MiB pages and the whole shop idle under `souk up` grew from 61 to 214 MiB
/// (summed PSS); without, 88 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use config::{Env, Secret};
pub use db::{Database, DatabaseConfig};
pub use extract::{Json, Path, Query};
pub use health::Health;
pub use http::HttpConfig;
pub use problem::{FieldError, Problem};
pub use server::{Shutdown, serve};
