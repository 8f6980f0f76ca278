//! # beacon-intake
//!
//! The Beacon intake server and the `beacon` command-line tool.
//!
//! - [`server`]: `beacon serve`, the HTTP intake (`POST /v1/events`, `GET /healthz`,
//!   `GET /metrics`), storing into SQLite ([`store`]) or forwarding to another intake
//!   ([`forward`]) with the SDK's own client and HTTP transport.
//! - [`body`]: the pure body decoder and parser (the fuzz target calls it).
//! - [`auth`], [`metrics`]: credentials checked in constant time; Prometheus counters.
//! - [`send`], [`inspect`]: `beacon send`, `beacon tail` and `beacon query`.
//!
//! Validation is the SDK's: [`beacon::schema::validate_object`].
#![warn(missing_docs)]

pub mod auth;
pub mod body;
pub mod forward;
pub mod inspect;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod metrics;
pub mod send;
pub mod server;
pub mod store;
