//! The services inventory calls, and the few fields it reads from each (tolerant reader).

pub mod catalog;
