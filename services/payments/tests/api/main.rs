//! Payments' integration tests: one binary, a module per area. Each store test runs against
//! SQLite, and again against PostgreSQL when `SOUK_TEST_POSTGRES_URL` is set, each on a fresh
//! database.

// A test binary: panicking on the unexpected is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod auth;
mod bad_input;
mod chaos;
mod charges;
mod concurrency;
mod config;
mod events;
mod helpers;
mod late_captures;
mod logs;
mod methods;
mod openapi;
mod refunds;
mod vault;
