//! Identity's integration tests: one binary, a module per area. Each test runs against SQLite,
//! and again against PostgreSQL when `SOUK_TEST_POSTGRES_URL` is set, each on a fresh database.

// A test binary: panicking on the unexpected is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod admin;
mod helpers;
mod keys;
mod login;
mod me;
mod openapi;
mod passwords;
mod refresh;
mod register;
mod services;
mod sessions;
