//! Pre-aggregation: counters, gauges and histograms per (name, attributes) series, and usage
//! sums per (bucket start, resource, feature, unit). Emitted by the batching core's ticker; a
//! series or bucket leaves memory only once the queue has taken its item, so a full queue or a
//! failed delivery never loses a sum.

mod hashed;
mod metrics;
mod usage;

pub(crate) use hashed::HashedMap;

/// The lock around a map of series or buckets. Recording takes it for a lookup and an
/// addition; the ticker takes it to encode what is due. Taking it is one atomic
/// compare-and-swap and releasing it a plain store, where a std `Mutex` takes a second atomic
/// read-modify-write to release; a thread that finds it taken yields until it is free.
///
/// Natively the ticker holds it only to take the due aggregates out (and, when the queue
/// refuses some, to merge them back into what was recorded meanwhile), not while it encodes
/// them, so a recording thread that finds it taken yields for a short while. In the browser,
/// with one thread, the aggregates are encoded in place.
pub(crate) type Lock<T> = spin::mutex::SpinMutex<T, spin::relax::Yield>;
pub(crate) use metrics::{MetricKind, Metrics};
pub(crate) use usage::UsageAggregator;
pub use usage::UsageBucket;

/// The default histogram boundaries (milliseconds-friendly, as OpenTelemetry's).
pub const DEFAULT_HISTOGRAM_BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];
