//! Sentry-compatible usage accounting on Kafka (feature `kafka`).
//!
//! [`UsageAccountant`] has the shape of `sentry_usage_accountant::UsageAccountant`: build it
//! with a [`KafkaConfig`] and an optional granularity (60 s by default), [`record`] usage of a
//! shared resource by a feature, and [`flush`]. Sums per (bucket start, resource, feature,
//! unit) are written to the `shared-resources-usage` topic as sentry's exact message:
//!
//! ```text
//! {"timestamp":1700000040,"shared_resource_id":"relay","app_feature":"spans","usage_unit":"bytes","amount":100}
//! ```
//!
//! Unlike the original, buckets close on a timer (not only on the next `record`), a send that
//! fails keeps its messages for the next attempt, creating the producer is an error rather
//! than a panic, and every message carries a deterministic key
//! (`[bucket start, resource, feature, unit]`), so re-sending after an ambiguous failure
//! never double counts for a consumer that keeps one message per key.
//!
//! [`record`]: UsageAccountant::record
//! [`flush`]: UsageAccountant::flush

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::Serialize;

use crate::aggregate::{UsageAggregator, UsageBucket};
use crate::data::UsageUnit;
use crate::encode::Ctx;
use crate::rt::{self, Duration};
use crate::transport::kafka::{KafkaConfig, KafkaProducer, KafkaStartError};
use crate::transport::SendError;

/// The topic sentry's accountant writes to.
pub const DEFAULT_USAGE_TOPIC: &str = "shared-resources-usage";

/// The default bucket length.
pub const DEFAULT_GRANULARITY: Duration = Duration::from_secs(60);

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Builds a [`UsageAccountant`].
pub struct UsageAccountantBuilder {
    config: KafkaConfig,
    topic: String,
    granularity: Duration,
    max_pending: usize,
    flush_timeout: Duration,
    drop_timeout: Duration,
    clock: Clock,
}

impl fmt::Debug for UsageAccountantBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageAccountantBuilder")
            .field("config", &self.config)
            .field("topic", &self.topic)
            .field("granularity", &self.granularity)
            .finish_non_exhaustive()
    }
}

impl UsageAccountantBuilder {
    /// The topic (default [`DEFAULT_USAGE_TOPIC`]).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// The bucket length (default 60 s; at least 1 s, as timestamps are in seconds).
    pub fn granularity(mut self, granularity: Duration) -> Self {
        self.granularity = granularity;
        self
    }

    /// Most bucket messages kept for a later attempt while Kafka does not take them
    /// (default 100 000); past that the oldest are dropped and counted
    /// ([`UsageAccountant::dropped`]).
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max_pending = max.max(1);
        self
    }

    /// How long [`UsageAccountant::flush`] waits for the broker (default 35 s: librdkafka
    /// reports a message within `message.timeout.ms`, 30 s by default).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// How long dropping the accountant waits for its final flush (default 5 s).
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Replaces the wall clock (Unix milliseconds), so tests can place records in buckets.
    #[cfg(feature = "testing")]
    pub fn clock(mut self, now_unix_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now_unix_ms);
        self
    }

    /// Creates the producer (checking, within the configuration's start-up timeout, that a
    /// broker answers and the topic exists) and starts the timer that closes buckets.
    pub fn build(self) -> Result<UsageAccountant, KafkaStartError> {
        let producer = KafkaProducer::connect(&self.config, &[self.topic.as_str()])?;
        let granularity_ms = (self.granularity.as_millis() as u64).max(1000);
        // Usage messages carry no attributes: an empty context cannot be refused.
        let ctx = Ctx::new(Vec::new())
            .map_err(|_| KafkaStartError::InvalidConfig("usage context".into()))?;
        let inner = Arc::new(Inner {
            aggregator: UsageAggregator::new(granularity_ms, Arc::new(ctx)),
            producer,
            topic: self.topic,
            granularity_ms,
            pending: Mutex::new(Vec::new()),
            parts: Mutex::new(HashMap::new()),
            round: futures_util::lock::Mutex::new(()),
            max_pending: self.max_pending,
            dropped: AtomicU64::new(0),
            clock: self.clock,
        });
        let tick = Duration::from_millis(granularity_ms.min(1000));
        let weak = Arc::downgrade(&inner);
        rt::spawn(close_buckets(weak, tick));
        Ok(UsageAccountant {
            inner,
            flush_timeout: self.flush_timeout,
            drop_timeout: self.drop_timeout,
        })
    }
}

/// Accumulates usage per (bucket, resource, feature, unit) and writes sentry's usage messages
/// to Kafka. Create one per process and share it (`record` takes `&self`).
///
/// ```no_run
/// use beacon::transport::KafkaConfig;
/// use beacon::usage_accountant::UsageAccountant;
/// use beacon::UsageUnit;
///
/// let accountant = UsageAccountant::new_with_kafka(
///     KafkaConfig::new("127.0.0.1:9092"),
///     None, // topic: shared-resources-usage
///     None, // granularity: 60 s
/// )?;
/// accountant.record("generic_metrics_indexer_consumer", "transactions", 100, UsageUnit::Bytes);
/// accountant.flush()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UsageAccountant {
    inner: Arc<Inner>,
    flush_timeout: Duration,
    drop_timeout: Duration,
}

impl fmt::Debug for UsageAccountant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageAccountant")
            .field("topic", &self.inner.topic)
            .field("granularity_ms", &self.inner.granularity_ms)
            .finish_non_exhaustive()
    }
}

/// Why a [`UsageAccountant::flush`] did not deliver everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageFlushError {
    /// Kafka did not take every message; they are kept and sent again by the timer or the
    /// next flush.
    NotDelivered {
        /// Messages waiting for the next attempt.
        pending: usize,
        /// What went wrong.
        reason: String,
    },
    /// Kafka refused messages for good (e.g. authorisation); they were dropped and counted.
    Refused {
        /// Messages dropped.
        dropped: usize,
        /// What went wrong.
        reason: String,
    },
    /// The flush took longer than the flush timeout; it goes on in the background.
    Timeout,
}

impl fmt::Display for UsageFlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageFlushError::NotDelivered { pending, reason } => write!(
                f,
                "{pending} usage message(s) not delivered yet, kept for the next attempt: {reason}"
            ),
            UsageFlushError::Refused { dropped, reason } => {
                write!(
                    f,
                    "{dropped} usage message(s) refused and dropped: {reason}"
                )
            }
            UsageFlushError::Timeout => write!(f, "usage flush timed out"),
        }
    }
}

impl std::error::Error for UsageFlushError {}

impl UsageAccountant {
    /// Starts building an accountant for this Kafka configuration.
    pub fn builder(config: KafkaConfig) -> UsageAccountantBuilder {
        UsageAccountantBuilder {
            config,
            topic: DEFAULT_USAGE_TOPIC.to_owned(),
            granularity: DEFAULT_GRANULARITY,
            max_pending: 100_000,
            flush_timeout: Duration::from_secs(35),
            drop_timeout: Duration::from_secs(5),
            clock: Arc::new(rt::now_unix_ms),
        }
    }

    /// sentry's constructor: a Kafka configuration, an optional topic (default
    /// `shared-resources-usage`) and an optional granularity (default 60 s).
    pub fn new_with_kafka(
        config: KafkaConfig,
        topic: Option<&str>,
        granularity: Option<Duration>,
    ) -> Result<UsageAccountant, KafkaStartError> {
        let mut b = Self::builder(config);
        if let Some(t) = topic {
            b = b.topic(t);
        }
        if let Some(g) = granularity {
            b = b.granularity(g);
        }
        b.build()
    }

    /// Adds `amount` of `unit` used by `app_feature` on `resource_id` to the current bucket.
    /// Never blocks on Kafka: the bucket is sent by the timer once it closes.
    #[inline]
    pub fn record(&self, resource_id: &str, app_feature: &str, amount: u64, unit: UsageUnit) {
        let now = (self.inner.clock)();
        self.inner
            .aggregator
            .record(resource_id, app_feature, amount, unit, now);
    }

    /// Sends every bucket, the open ones included, and waits (up to the flush timeout) until
    /// Kafka has them all. What fails stays for the next attempt.
    ///
    /// Records that land in a bucket after it was flushed open are sent later as another
    /// part of that bucket, under their own key (`[start, resource, feature, unit, part]`).
    pub fn flush(&self) -> Result<(), UsageFlushError> {
        self.flush_within(self.flush_timeout)
    }

    fn flush_within(&self, timeout: Duration) -> Result<(), UsageFlushError> {
        let inner = self.inner.clone();
        rt::block_on_timeout(async move { inner.round(true).await }, timeout)
            .unwrap_or(Err(UsageFlushError::Timeout))
    }

    /// Bucket messages waiting for Kafka (not yet acknowledged).
    pub fn pending(&self) -> usize {
        self.inner.pending_len()
    }

    /// Bucket messages dropped: refused by Kafka, or over [`UsageAccountantBuilder::max_pending`].
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// The bucket length in milliseconds.
    pub fn granularity_ms(&self) -> u64 {
        self.inner.granularity_ms
    }
}

impl Drop for UsageAccountant {
    /// Flushes what is left, waiting at most the drop timeout (as sentry's accountant does
    /// on drop).
    fn drop(&mut self) {
        let _ = self.flush_within(self.drop_timeout);
    }
}

/// sentry's message, field for field and in the same order.
#[derive(Serialize)]
struct Message<'a> {
    timestamp: i64,
    shared_resource_id: &'a str,
    app_feature: &'a str,
    usage_unit: &'a str,
    amount: u64,
}

/// A bucket that left the aggregator and waits for Kafka's acknowledgement.
#[derive(Debug, Clone)]
struct Pending {
    key: String,
    payload: String,
}

/// Identifies a bucket for part numbering.
type BucketId = (u64, String, String, UsageUnit);

struct Inner {
    aggregator: UsageAggregator,
    producer: KafkaProducer,
    topic: String,
    granularity_ms: u64,
    pending: Mutex<Vec<Pending>>,
    /// Open buckets that were flushed: how many parts each has sent.
    parts: Mutex<HashMap<BucketId, u32>>,
    /// One send round at a time (the timer and `flush` share the pending list).
    round: futures_util::lock::Mutex<()>,
    max_pending: usize,
    dropped: AtomicU64,
    clock: Clock,
}

impl Inner {
    fn pending_len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Moves closed buckets (every bucket when `all`) into the pending list, then sends the
    /// pending list.
    async fn round(&self, all: bool) -> Result<(), UsageFlushError> {
        let _one = self.round.lock().await;
        let now = (self.clock)();
        self.take_buckets(now, all);
        let batch: Vec<Pending> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if batch.is_empty() {
            return Ok(());
        }
        let topic = self.topic.as_str();
        let records = batch
            .iter()
            .map(|p| (topic, p.key.as_bytes(), p.payload.as_bytes()));
        let result = self.producer.produce(records, Duration::from_secs(5)).await;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                pending.drain(..batch.len());
                Ok(())
            }
            Err(SendError::Retry { reason, .. }) => Err(UsageFlushError::NotDelivered {
                pending: pending.len(),
                reason,
            }),
            Err(SendError::GiveUp { reason }) => {
                pending.drain(..batch.len());
                self.dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                Err(UsageFlushError::Refused {
                    dropped: batch.len(),
                    reason,
                })
            }
        }
    }

    fn take_buckets(&self, now: u64, all: bool) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh: Vec<Pending> = Vec::new();
        self.aggregator.drain(now, all, &mut |b: &UsageBucket| {
            let closed = b.bucket_start_ms + self.granularity_ms <= now;
            let id: BucketId = (
                b.bucket_start_ms,
                b.resource_id.clone(),
                b.app_feature.clone(),
                b.unit,
            );
            let part = if closed {
                parts.remove(&id).unwrap_or(0)
            } else {
                let n = parts.entry(id).or_insert(0);
                *n += 1;
                *n - 1
            };
            fresh.push(encode(b, part));
            true
        });
        // Forget part counters of buckets that closed without further records.
        let g = self.granularity_ms;
        parts.retain(|id, _| id.0 + g > now);
        drop(parts);
        if fresh.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.extend(fresh);
        if pending.len() > self.max_pending {
            let over = pending.len() - self.max_pending;
            pending.drain(..over);
            self.dropped.fetch_add(over as u64, Ordering::Relaxed);
        }
    }
}

/// sentry's payload and Beacon's deterministic key for one bucket (part).
fn encode(b: &UsageBucket, part: u32) -> Pending {
    let ts = (b.bucket_start_ms / 1000) as i64;
    let payload = serde_json::to_string(&Message {
        timestamp: ts,
        shared_resource_id: &b.resource_id,
        app_feature: &b.app_feature,
        usage_unit: b.unit.as_str(),
        amount: b.amount,
    })
    .unwrap_or_default();
    let key = if part == 0 {
        serde_json::to_string(&(ts, &b.resource_id, &b.app_feature, b.unit.as_str()))
    } else {
        serde_json::to_string(&(ts, &b.resource_id, &b.app_feature, b.unit.as_str(), part))
    }
    .unwrap_or_default();
    Pending { key, payload }
}

/// Sends closed buckets every `tick` until the accountant is dropped.
async fn close_buckets(weak: Weak<Inner>, tick: Duration) {
    loop {
        rt::sleep(tick).await;
        let Some(inner) = weak.upgrade() else { return };
        let _ = inner.round(false).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(start_ms: u64, amount: u64) -> UsageBucket {
        UsageBucket {
            bucket_start_ms: start_ms,
            resource_id: "relay".into(),
            app_feature: "spans \"x\"".into(),
            unit: UsageUnit::BytesSec,
            amount,
        }
    }

    #[test]
    fn message_is_sentrys_byte_for_byte() {
        let p = encode(&bucket(1_700_000_040_000, 100), 0);
        assert_eq!(
            p.payload,
            r#"{"timestamp":1700000040,"shared_resource_id":"relay","app_feature":"spans \"x\"","usage_unit":"bytes_sec","amount":100}"#
        );
        assert_eq!(p.key, r#"[1700000040,"relay","spans \"x\"","bytes_sec"]"#);
    }

    #[test]
    fn keys_are_deterministic_per_bucket_and_part() {
        let a = encode(&bucket(60_000, 1), 0);
        let b = encode(&bucket(60_000, 999), 0);
        assert_eq!(a.key, b.key, "the key does not depend on the amount");
        let c = encode(&bucket(60_000, 1), 1);
        assert_eq!(c.key, r#"[60,"relay","spans \"x\"","bytes_sec",1]"#);
        assert_ne!(encode(&bucket(120_000, 1), 0).key, a.key);
    }
}
