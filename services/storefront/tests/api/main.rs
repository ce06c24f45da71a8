//! The storefront's integration tests.
