//! Orders' integration tests: one binary, a module per area. Each test runs against SQLite, and
//! again against PostgreSQL when `SOUK_TEST_POSTGRES_URL` is set, each on a fresh database, with
//! fake neighbours (cart, catalog, inventory, payments, identity) on a local port.

// A test binary: panicking on the unexpected is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod bad_input;
mod bus_outage;
mod checkout;
mod config;
mod fakes;
mod helpers;
mod idempotency;
mod idempotency_race;
mod long_faults;
mod openapi;
mod orders;
mod recovery;
mod saga;
