//! # Beacon
//!
//! One telemetry SDK for native programs and the browser. Events, metrics (counter, gauge,
//! histogram), logs, spans and usage go through one [`Client`], one batching core bounded in
//! items and bytes, and one async [`Transport`] trait. Every item is one flat JSON object in
//! the shared schema (see [`schema`]).
//!
//! ```no_run
//! use beacon::{attrs, Client, transport::HttpTransport};
//!
//! let client = Client::builder()
//!     .service_name("billing")
//!     .transport(HttpTransport::new("http://127.0.0.1:7070/v1/events").unwrap())
//!     .build()
//!     .unwrap();
//! client.record("behavioral", "login-start", &attrs!["plan" => "pro"]);
//! client.counter("requests", 1.0, &attrs!["route" => "/pay"]);
//! client.flush_blocking(std::time::Duration::from_secs(5)).unwrap();
//! ```
#![warn(missing_docs)]

pub mod aggregate;
pub mod batch;
mod client;
pub mod data;
mod encode;
mod random;
pub mod report;
pub mod rt;
pub mod schema;
#[cfg(all(feature = "kafka", feature = "testing"))]
pub mod tansu;
pub mod transport;
#[cfg(feature = "kafka")]
pub mod usage_accountant;
#[cfg(target_arch = "wasm32")]
mod web;

pub use batch::{BatchConfig, DropCounts, DropReason, FlushError, Overflow, Stats};
pub use client::{Client, ClientBuilder, ConfigError, RecordError, Span, Timer};
pub use data::{Attrs, Batch, Item, Level, OwnedValue, SpanContext, SpanStatus, UsageUnit, Value};
pub use report::Reporter;
pub use transport::{RetryPolicy, SendError, Transport};

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
