//! Traces without a tracing backend: the gateway receives the shop's spans over OTLP/HTTP
//! (`otlp`), keeps the most recent ones in a bounded store (`store`), and serves them:
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/traces` (the `[traces]` listener) | OTLP/HTTP export, protobuf or JSON |
//! | `GET /traces?service=&route=&min_ms=&status=error&limit=` | recent traces, newest first |
//! | `GET /traces/{trace_id}` | every span of one trace |
//! | `GET /waterfall`, `GET /waterfall?trace={trace_id}` | the page: the list, and one trace drawn |
//!
//! The reads are on the admin and the read-only listeners, like the service map that links to
//! them.

mod api;
pub mod otlp;
pub mod page;
pub mod store;

pub use api::{TraceList, TraceView, router};
pub use store::{Limits, TraceStore};
