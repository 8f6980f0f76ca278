//! The item types and their encoding into the envelope: attribute values, encoded items,
//! metrics, logs, spans and usage. Pure data: no I/O, no clocks, no threads.

pub(crate) mod item;
mod log;
pub(crate) mod span;
pub(crate) mod value;

pub use item::{Batch, Item};
pub use log::Level;
pub use span::{SpanContext, SpanStatus, TraceparentError};
pub use value::{Attrs, OwnedValue, Value};

/// The units of usage accounting (as in `sentry_usage_accountant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UsageUnit {
    /// Milliseconds of time.
    Milliseconds,
    /// Bytes.
    Bytes,
    /// Bytes times seconds (e.g. memory held for a while).
    BytesSec,
}

impl UsageUnit {
    /// The unit's name on the wire: `milliseconds`, `bytes`, `bytes_sec`.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageUnit::Milliseconds => "milliseconds",
            UsageUnit::Bytes => "bytes",
            UsageUnit::BytesSec => "bytes_sec",
        }
    }

    /// Parses a unit name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "milliseconds" => Some(UsageUnit::Milliseconds),
            "bytes" => Some(UsageUnit::Bytes),
            "bytes_sec" => Some(UsageUnit::BytesSec),
            _ => None,
        }
    }
}

/// The kinds of metric items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A pre-aggregated sum over one flush interval.
    Counter,
    /// The last value set in one flush interval.
    Gauge,
    /// A pre-aggregated distribution over one flush interval.
    Histogram,
    /// One sampled timing in milliseconds.
    Timer,
    /// One sampled counter increment.
    Incr,
    /// One plain value (`record_metric`).
    Value,
}

impl MetricType {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Timer => "timer",
            MetricType::Incr => "incr",
            MetricType::Value => "value",
        }
    }
}
