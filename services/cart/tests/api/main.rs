//! The cart's integration tests: one binary, a module per area. Each test runs against SQLite,
//! and again against Redis when `SOUK_TEST_REDIS_URL` is set, each on a store of its own.

// A test binary: panicking on the unexpected is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[macro_use]
mod helpers;

mod auth;
mod bad_input;
mod cart;
mod limits;
mod openapi;
mod order_events;
mod pricing;
mod proxy;
mod store;
