//! History's integration tests: one binary, a module per area. Each test runs against SQLite,
//! and again against PostgreSQL when `SOUK_TEST_POSTGRES_URL` is set, each on a fresh database;
//! the NATS transport runs once when `SOUK_TEST_NATS_URL` is set.

// A test binary: panicking on the unexpected is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod arrival;
mod bad_input;
mod config;
mod fixtures;
mod helpers;
mod nats;
mod openapi;
mod paging;
mod poison;
mod projection;
mod redelivery;
