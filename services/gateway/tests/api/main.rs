//! The gateway's integration tests: one binary, a gateway per test on port 0, and small local
//! upstreams whose behaviour each test controls.

// A test binary: panicking on the unexpected is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod admin;
mod aggregate;
mod auth;
mod balancing;
mod breaker;
mod connections;
mod early;
mod faults;
mod headers;
mod helpers;
mod limits;
mod metrics;
mod outliers;
mod reload;
mod retries;
mod routing;
mod smuggling;
mod streaming;
mod traces;
