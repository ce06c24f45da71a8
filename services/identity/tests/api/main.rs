//! Identity integration tests.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]
