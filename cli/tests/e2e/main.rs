//! End-to-end tests of the whole shop, black box: they run the built `souk` binary on random
//! loopback ports and temporary data dirs, drive it over HTTP and signals, and check that no
//! process is left behind.

// A test binary: panicking on the unexpected is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod authz;
mod bad_input;
mod bench;
mod browser;
mod clients;
mod crash;
mod helpers;
mod nats;
mod ready;
mod security;
mod shopping;
mod traces;
mod up;
