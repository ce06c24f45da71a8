//! The events plumbing against real engines: SQLite always, PostgreSQL when
//! `SOUK_TEST_POSTGRES_URL` is set, NATS JetStream when `SOUK_TEST_NATS_URL` is set.

// A test binary: panicking on the unexpected is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod consumer;
mod dead_letters;
mod helpers;
mod outbox;
mod relay;
mod retention;
