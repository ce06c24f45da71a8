//! The `souk` command's library: what the command and its end-to-end tests share.
//!
//! The command itself is `main.rs` and its modules; only what a test of the whole shop must read
//! the same way the command does lives here.

pub mod books;
