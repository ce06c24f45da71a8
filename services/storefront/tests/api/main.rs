//! The storefront's integration tests: one binary. Each test serves the storefront on port 0 in
//! front of a small fake gateway (axum on port 0 answering the few JSON documents the pages
//! read), and reads the pages over HTTP like a browser that does not follow redirects.

// A test binary: panicking on the unexpected is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod helpers;
mod pages;
mod sessions;
