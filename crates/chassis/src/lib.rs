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

/// mimalloc's `mi_option_purge_delay`: its place in mimalloc's `mi_option_e` (v3), which the
/// Rust bindings do not name. A test checks it against the option's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tunes mimalloc for a long-running service: memory freed is returned to the system at once
/// instead of a second later (mimalloc v3's default delay). Measured with `souk bench --compare
/// --scenario mixed --rates 2000` (`bench/results/cost.md`, "Memory"): the monolith's resident
/// set 60 MiB instead of 78–83, at no CPU cost the runs could tell. Call it first thing in
/// `main`, before any other thread starts; the environment's `MIMALLOC_PURGE_DELAY` still wins
/// when set.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    // mimalloc reads its options from the environment in any case, and honours the old name.
    let set_outside = std::env::vars_os().any(|(name, _)| {
        ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
            .iter()
            .any(|option| name.eq_ignore_ascii_case(option))
    });
    if !set_outside {
        // SAFETY: `mi_option_set` writes the option's plain value; this runs first in `main`,
        // before any thread that could read it concurrently exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

pub use config::{Env, Secret};
pub use db::{Database, DatabaseConfig};
pub use extract::{Json, Path, Query};
pub use health::Health;
pub use http::HttpConfig;
pub use problem::{FieldError, Problem};
pub use server::{Shutdown, serve};

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_tuned() {
        use libmimalloc_sys::{mi_option_get, mi_option_use_numa_nodes};
        // The option just before `use_numa_nodes`, which the bindings do name.
        assert_eq!(MI_OPTION_PURGE_DELAY, mi_option_use_numa_nodes - 1);
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an option.
            assert_eq!(
                unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) },
                1000,
                "mimalloc v3's default: a second"
            );
            tune_allocator();
            // SAFETY: reads an option.
            assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 0);
        }
    }
}
