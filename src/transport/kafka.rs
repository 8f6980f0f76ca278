//! The Kafka transport (native only, feature `kafka`): one Kafka message per item, on a topic
//! chosen by `event_type`, keyed by `event_id`, acknowledged only once the broker has it.
//!
//! The same producer serves the [`crate::usage_accountant::UsageAccountant`] and the intake's
//! Kafka sink (through [`KafkaTransport::produce`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use futures_util::future::{select, Either};
use futures_util::task::AtomicWaker;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::data::Batch;
use crate::rt::{self, BoxFuture, Duration, Instant};

use super::{SendError, Transport};

/// The topic for items whose `event_type` has no topic of its own.
pub const DEFAULT_TOPIC: &str = "beacon-events";

/// Properties Beacon sets unless the configuration sets them: an idempotent producer (no
/// duplicates from librdkafka's own retries), lz4 batches, a small linger, and a delivery
/// timeout short enough that the core's retry policy sees a dead broker within a round.
const DEFAULTS: [(&str, &str); 5] = [
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    ("message.timeout.ms", "30000"),
    ("client.id", "beacon"),
];

/// librdkafka's own default for `queue.buffering.max.messages`.
const LIBRDKAFKA_MAX_QUEUED: usize = 100_000;

/// How to reach Kafka and where items go.
///
/// Properties are librdkafka's (`bootstrap.servers`, `security.protocol`, `sasl.*`,
/// `linger.ms`, …; see librdkafka's `CONFIGURATION.md`) and are passed through unchanged, so
/// no rdkafka type appears in Beacon's API. Beacon adds `enable.idempotence=true`,
/// `compression.type=lz4`, `linger.ms=5`, `message.timeout.ms=30000` and `client.id=beacon`
/// where the configuration does not set them.
///
/// ```
/// use beacon::transport::KafkaConfig;
///
/// let config = KafkaConfig::new("127.0.0.1:9092")
///     .set("linger.ms", "50")
///     .default_topic("telemetry")
///     .topic_for("usage", "telemetry-usage");
/// assert_eq!(config.topic("usage"), "telemetry-usage");
/// assert_eq!(config.topic("log"), "telemetry");
/// ```
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    properties: BTreeMap<String, String>,
    default_topic: String,
    topics: HashMap<String, String>,
    startup_timeout: Duration,
    shutdown_timeout: Duration,
    queue_full_wait: Duration,
    require_topics: bool,
}

impl KafkaConfig {
    /// A configuration for these brokers (`bootstrap.servers`, e.g. `"127.0.0.1:9092"`).
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self::from_properties([("bootstrap.servers".to_owned(), bootstrap_servers.into())])
    }

    /// A configuration from librdkafka properties, as `sentry_usage_accountant`'s
    /// `KafkaConfig::new_producer_config(HashMap)` takes them.
    pub fn from_properties<K, V>(properties: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        KafkaConfig {
            properties: properties
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            default_topic: DEFAULT_TOPIC.to_owned(),
            topics: HashMap::new(),
            startup_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            queue_full_wait: Duration::from_secs(5),
            require_topics: true,
        }
    }

    /// Sets a librdkafka property (passed through unchanged).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// The topic for items whose `event_type` has no topic of its own (default
    /// [`DEFAULT_TOPIC`]).
    pub fn default_topic(mut self, topic: impl Into<String>) -> Self {
        self.default_topic = topic.into();
        self
    }

    /// Sends items of this `event_type` to `topic`.
    pub fn topic_for(mut self, event_type: impl Into<String>, topic: impl Into<String>) -> Self {
        self.topics.insert(event_type.into(), topic.into());
        self
    }

    /// How long start-up waits for the brokers to answer a metadata request (default 10 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// How long `shutdown` waits for messages still in flight (default 10 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long a send waits for room when librdkafka's queue is full before asking the
    /// core to retry later (default 5 s). Zero fails at once, as a server that sheds load
    /// wants.
    pub fn queue_full_wait(mut self, wait: Duration) -> Self {
        self.queue_full_wait = wait;
        self
    }

    /// Whether start-up fails when a configured topic does not exist (default `true`). Turn
    /// it off for brokers that create topics on first use.
    pub fn require_topics(mut self, require: bool) -> Self {
        self.require_topics = require;
        self
    }

    /// The topic items of `event_type` go to.
    pub fn topic(&self, event_type: &str) -> &str {
        self.topics
            .get(event_type)
            .map_or(self.default_topic.as_str(), String::as_str)
    }

    /// The librdkafka properties the producer is created with: the configured ones, plus
    /// Beacon's defaults where they are not set.
    pub fn effective_properties(&self) -> BTreeMap<String, String> {
        let mut all = self.properties.clone();
        for (k, v) in DEFAULTS {
            all.entry(k.to_owned()).or_insert_with(|| v.to_owned());
        }
        all
    }

    fn bootstrap_servers(&self) -> &str {
        self.properties
            .get("bootstrap.servers")
            .or_else(|| self.properties.get("metadata.broker.list"))
            .map_or("(not set)", String::as_str)
    }

    fn all_topics(&self) -> Vec<&str> {
        let mut t: Vec<&str> = std::iter::once(self.default_topic.as_str())
            .chain(self.topics.values().map(String::as_str))
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    }
}

/// Why a Kafka producer could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaStartError {
    /// librdkafka refused the configuration (an unknown property, a bad value, …).
    InvalidConfig(String),
    /// No broker answered a metadata request within the start-up timeout.
    Unreachable {
        /// `bootstrap.servers` as configured.
        brokers: String,
        /// How long start-up waited.
        waited: Duration,
        /// librdkafka's description of the failure.
        reason: String,
    },
    /// The brokers answered but do not have this topic (see [`KafkaConfig::require_topics`]).
    MissingTopic {
        /// `bootstrap.servers` as configured.
        brokers: String,
        /// The missing topic.
        topic: String,
    },
}

impl fmt::Display for KafkaStartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KafkaStartError::InvalidConfig(r) => write!(f, "invalid Kafka configuration: {r}"),
            KafkaStartError::Unreachable {
                brokers,
                waited,
                reason,
            } => write!(
                f,
                "no Kafka broker at {brokers} answered within {} ms: {reason}",
                waited.as_millis()
            ),
            KafkaStartError::MissingTopic { brokers, topic } => write!(
                f,
                "Kafka topic {topic:?} does not exist on {brokers} (create it, or allow \
                 missing topics for brokers that create them on first use)"
            ),
        }
    }
}

impl std::error::Error for KafkaStartError {}

/// One message for [`KafkaTransport::produce`].
#[derive(Debug, Clone, Copy)]
pub struct KafkaRecord<'a> {
    /// The `event_type` that picks the topic.
    pub event_type: &'a str,
    /// The message key (Beacon uses the `event_id`).
    pub key: &'a [u8],
    /// The message value (the item's JSON).
    pub payload: &'a [u8],
}

/// Sends every item of a batch as one Kafka message and succeeds once the broker has
/// acknowledged all of them.
///
/// Topic: per `event_type`, else the default topic. Key: the `event_id`, so consumers
/// de-duplicate the re-sends that an ambiguous failure (a timeout after the broker wrote the
/// message) causes. Failures are classified for the core's retry policy: a dead or
/// unreachable broker, timeouts, leader changes and a full queue are retried; a message
/// too large, an invalid topic or a refused authorisation give up. A producer that hits a
/// fatal error, or whose messages timed out, is replaced by a fresh one (a new idempotent
/// producer session) and the batch retried.
///
/// ```no_run
/// use beacon::transport::{KafkaConfig, KafkaTransport};
///
/// let kafka = KafkaTransport::connect(KafkaConfig::new("127.0.0.1:9092")).unwrap();
/// let client = beacon::Client::builder().transport(kafka).build().unwrap();
/// client.record("behavioral", "login-start", &beacon::attrs![]);
/// ```
#[derive(Clone)]
pub struct KafkaTransport {
    producer: KafkaProducer,
    config: Arc<KafkaConfig>,
}

impl fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaTransport {
    /// Creates the producer and checks, within [`KafkaConfig::startup_timeout`], that a
    /// broker answers and that the configured topics exist. Blocks the calling thread for at
    /// most that long (call it from a blocking context inside an async runtime).
    pub fn connect(config: KafkaConfig) -> Result<KafkaTransport, KafkaStartError> {
        let producer = KafkaProducer::connect(&config, &config.all_topics())?;
        Ok(KafkaTransport {
            producer,
            config: Arc::new(config),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Produces records and resolves once the broker has acknowledged every one of them, or
    /// with the classified failure. This is what [`Transport::send`] does with a batch; a
    /// server (the intake's Kafka sink) calls it with the items it validated.
    ///
    /// When librdkafka's queue cannot take the records, this waits up to
    /// [`KafkaConfig::queue_full_wait`] and then fails with `SendError::Retry` with a
    /// one-second `after`: an HTTP server answers that as 503 with `Retry-After: 1`.
    pub fn produce<'a, I>(&'a self, records: I) -> BoxFuture<'a, Result<(), SendError>>
    where
        I: IntoIterator<Item = KafkaRecord<'a>>,
        I::IntoIter: Send + 'a,
    {
        let config = &self.config;
        Box::pin(
            self.producer.produce(
                records
                    .into_iter()
                    .map(move |r| (config.topic(r.event_type), r.key, r.payload)),
                config.queue_full_wait,
            ),
        )
    }

    /// Whether librdkafka's queue has room for `n` more messages right now (a server can shed
    /// load before accepting a request it could not queue).
    pub fn has_room_for(&self, n: usize) -> bool {
        self.producer.has_room_for(n)
    }

    /// Messages produced but not yet acknowledged or failed.
    pub fn in_flight(&self) -> usize {
        self.producer.in_flight()
    }
}

impl Transport for KafkaTransport {
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            let config = &self.config;
            let records = batch.items().iter().map(|item| {
                (
                    config.topic(item.event_type()),
                    item.event_id().as_bytes(),
                    item.json().as_bytes(),
                )
            });
            self.producer.produce(records, config.queue_full_wait).await
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.producer.drain(self.config.shutdown_timeout))
    }
}

// ---------------------------------------------------------------------------------------------
// The producer shared by the transport, the usage accountant and the intake sink.

type Inner = ThreadedProducer<Reports>;

/// A librdkafka producer that can be replaced after a fatal error, with per-call delivery
/// tracking.
#[derive(Clone)]
pub(crate) struct KafkaProducer {
    current: Arc<RwLock<Arc<Inner>>>,
    client_config: Arc<ClientConfig>,
    max_queued: usize,
    message_timeout: Duration,
}

impl KafkaProducer {
    /// Creates the producer and waits (at most `startup_timeout`) for metadata that shows a
    /// live broker and, when required, every topic in `topics`.
    pub(crate) fn connect(
        config: &KafkaConfig,
        topics: &[&str],
    ) -> Result<KafkaProducer, KafkaStartError> {
        let props = config.effective_properties();
        let mut cc = ClientConfig::new();
        for (k, v) in &props {
            cc.set(k, v);
        }
        let inner = create(&cc).map_err(|e| KafkaStartError::InvalidConfig(describe(&e)))?;
        let brokers = config.bootstrap_servers().to_owned();
        let metadata = inner
            .client()
            .fetch_metadata(None, config.startup_timeout)
            .map_err(|e| KafkaStartError::Unreachable {
                brokers: brokers.clone(),
                waited: config.startup_timeout,
                reason: describe(&e),
            })?;
        if config.require_topics {
            for topic in topics {
                let found = metadata
                    .topics()
                    .iter()
                    .any(|t| t.name() == *topic && t.error().is_none());
                if !found {
                    return Err(KafkaStartError::MissingTopic {
                        brokers,
                        topic: (*topic).to_owned(),
                    });
                }
            }
        }
        let num = |key: &str, default: usize| {
            props
                .get(key)
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(default)
        };
        Ok(KafkaProducer {
            current: Arc::new(RwLock::new(Arc::new(inner))),
            client_config: Arc::new(cc),
            max_queued: num("queue.buffering.max.messages", LIBRDKAFKA_MAX_QUEUED),
            message_timeout: Duration::from_millis(
                num("message.timeout.ms", 30_000)
                    .max(num("delivery.timeout.ms", 0))
                    .max(1) as u64,
            ),
        })
    }

    fn get(&self) -> Arc<Inner> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.get().in_flight_count().max(0) as usize
    }

    pub(crate) fn has_room_for(&self, n: usize) -> bool {
        self.in_flight() + n <= self.max_queued
    }

    /// Produces `(topic, key, payload)` records; resolves when every one is acknowledged or
    /// failed, with the worst failure classified.
    pub(crate) async fn produce<'a>(
        &self,
        records: impl Iterator<Item = (&'a str, &'a [u8], &'a [u8])>,
        queue_full_wait: Duration,
    ) -> Result<(), SendError> {
        let producer = self.get();
        let tracker = Arc::new(Tracker::default());
        // The caller holds one count until everything is enqueued, so the tracker cannot
        // complete early.
        tracker.remaining.store(1, Ordering::SeqCst);
        let mut enqueue_failure: Option<SendError> = None;
        'records: for (topic, key, payload) in records {
            let mut waited_since: Option<Instant> = None;
            tracker.remaining.fetch_add(1, Ordering::SeqCst);
            loop {
                let record = BaseRecord::with_opaque_to(topic, tracker.clone())
                    .key(key)
                    .payload(payload);
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, _)) => {
                        let code = e.rdkafka_error_code();
                        if code == Some(RDKafkaErrorCode::QueueFull) {
                            let since = *waited_since.get_or_insert_with(rt::now);
                            if since.elapsed() < queue_full_wait {
                                rt::sleep(Duration::from_millis(2)).await;
                                continue;
                            }
                            tracker.remaining.fetch_sub(1, Ordering::SeqCst);
                            enqueue_failure = Some(SendError::Retry {
                                after: Some(Duration::from_secs(1)),
                                reason: "Kafka producer queue is full".into(),
                            });
                            break 'records;
                        }
                        tracker.remaining.fetch_sub(1, Ordering::SeqCst);
                        tracker.fail(classify(&e, topic));
                        continue 'records;
                    }
                }
            }
        }
        if let Some(e) = enqueue_failure {
            // What was enqueued still goes out; the re-send duplicates it under the same key.
            tracker.release();
            return Err(e);
        }
        tracker.release();
        // librdkafka reports every message within `message.timeout.ms`; the guard only
        // bounds the wait if a report never comes.
        let guard = self.message_timeout + Duration::from_secs(10);
        let done = Done(tracker.clone());
        match select(done, Box::pin(rt::sleep(guard))).await {
            Either::Left(((), _)) => {}
            Either::Right(_) => {
                self.replace(&producer);
                return Err(SendError::retry(format!(
                    "no Kafka delivery report within {} ms",
                    guard.as_millis()
                )));
            }
        }
        let outcome = tracker.outcome();
        if outcome.is_err()
            && (tracker.timed_out.load(Ordering::Relaxed)
                || producer.client().fatal_error().is_some())
        {
            self.replace(&producer);
        }
        outcome
    }

    /// Replaces a producer that cannot go on: after a fatal error, or after messages timed
    /// out. An idempotent producer whose messages timed out must start a new producer
    /// session; against a broker that lost its state (restarted) librdkafka's own recovery
    /// can stall, and every later message times out too. A fresh producer gets a new
    /// producer id; the re-sent messages keep their keys.
    fn replace(&self, failed: &Arc<Inner>) {
        let Ok(fresh) = create(&self.client_config) else {
            return;
        };
        let old = {
            let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
            if !Arc::ptr_eq(&cur, failed) {
                return; // someone else replaced it already
            }
            std::mem::replace(&mut *cur, Arc::new(fresh))
        };
        // Dropping a producer purges and joins its thread: not on the caller's task.
        let _ = std::thread::Builder::new()
            .name("beacon-kafka-drop".into())
            .spawn(move || drop(old));
    }

    /// Waits up to `timeout` for messages in flight, then purges what is left.
    pub(crate) async fn drain(&self, timeout: Duration) {
        let producer = self.get();
        let start = rt::now();
        let _ = producer.flush(Duration::ZERO); // send lingering messages now
        while producer.in_flight_count() > 0 && start.elapsed() < timeout {
            rt::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn create(cc: &ClientConfig) -> Result<Inner, KafkaError> {
    cc.create_with_context(Reports)
}

/// librdkafka's error code and text (e.g. `BrokerTransportFailure (Local: Broker transport
/// failure)`), without rdkafka's wrapper.
fn describe(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => code.to_string(),
        None => e.to_string(),
    }
}

/// Whether a failed message is worth sending again.
fn classify(e: &KafkaError, topic: &str) -> SendError {
    use RDKafkaErrorCode as C;
    let code = e.rdkafka_error_code();
    let reason = format!(
        "Kafka refused a message for topic {topic:?}: {}",
        describe(e)
    );
    match code {
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::InvalidTopic
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::InvalidArgument
            | C::UnsupportedCompressionType
            | C::UnsupportedForMessageFormat
            | C::PolicyViolation,
        ) => SendError::give_up(reason),
        // Everything else (a dead broker, timeouts, leader changes, a topic not created yet,
        // purges at shutdown, a fatal idempotence error the producer is replaced for) passes.
        _ => SendError::retry(reason),
    }
}

/// Delivery reports land here, on librdkafka's polling thread.
struct Reports;

impl ClientContext for Reports {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _msg: &str) {
        // Telemetry must stay quiet: failures reach the caller through delivery reports.
    }

    fn error(&self, _error: KafkaError, _reason: &str) {}
}

impl ProducerContext for Reports {
    type DeliveryOpaque = Arc<Tracker>;

    fn delivery(&self, result: &DeliveryResult<'_>, tracker: Arc<Tracker>) {
        if let Err((e, msg)) = result {
            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut) {
                tracker.timed_out.store(true, Ordering::Relaxed);
            }
            tracker.fail(classify(e, rdkafka::Message::topic(msg)));
        }
        tracker.release();
    }
}

/// Counts one call's outstanding messages and keeps its worst failure.
#[derive(Default)]
struct Tracker {
    remaining: AtomicUsize,
    worst: Mutex<Option<SendError>>,
    failed: AtomicUsize,
    timed_out: AtomicBool,
    waker: AtomicWaker,
}

impl Tracker {
    fn fail(&self, e: SendError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut w = self.worst.lock().unwrap_or_else(|p| p.into_inner());
        // A retryable failure wins: the whole call is re-sent and keyed duplicates are
        // removable; giving up is only right when nothing can be saved by retrying.
        match (&*w, &e) {
            (None, _) | (Some(SendError::GiveUp { .. }), SendError::Retry { .. }) => *w = Some(e),
            _ => {}
        }
    }

    fn release(&self) {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.waker.wake();
        }
    }

    fn outcome(&self) -> Result<(), SendError> {
        let failed = self.failed.load(Ordering::Relaxed);
        match self.worst.lock().unwrap_or_else(|p| p.into_inner()).take() {
            None => Ok(()),
            Some(SendError::Retry { after, reason }) => Err(SendError::Retry {
                after,
                reason: format!("{failed} message(s) not delivered; first: {reason}"),
            }),
            Some(SendError::GiveUp { reason }) => Err(SendError::give_up(format!(
                "{failed} message(s) refused; first: {reason}"
            ))),
        }
    }
}

struct Done(Arc<Tracker>);

impl Future for Done {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.remaining.load(Ordering::SeqCst) == 0 {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        if self.0.remaining.load(Ordering::SeqCst) == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_what_is_unset() {
        let c = KafkaConfig::new("127.0.0.1:1").set("linger.ms", "200");
        let p = c.effective_properties();
        assert_eq!(p["linger.ms"], "200");
        assert_eq!(p["enable.idempotence"], "true");
        assert_eq!(p["compression.type"], "lz4");
        assert_eq!(p["bootstrap.servers"], "127.0.0.1:1");
    }

    #[test]
    fn topics_route_by_event_type() {
        let c = KafkaConfig::new("x")
            .topic_for("log", "logs")
            .topic_for("usage", "logs");
        assert_eq!(c.topic("log"), "logs");
        assert_eq!(c.topic("behavioral"), DEFAULT_TOPIC);
        assert_eq!(c.all_topics(), vec![DEFAULT_TOPIC, "logs"]);
    }

    #[test]
    fn failures_are_classified() {
        let too_big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(matches!(classify(&too_big, "t"), SendError::GiveUp { .. }));
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::Fatal,
        ] {
            let e = KafkaError::MessageProduction(code);
            assert!(
                matches!(classify(&e, "t"), SendError::Retry { .. }),
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_retryable_failure_outranks_giving_up() {
        let t = Tracker::default();
        t.fail(SendError::give_up("big"));
        t.fail(SendError::retry("timeout"));
        t.fail(SendError::give_up("big"));
        match t.outcome() {
            Err(SendError::Retry { reason, .. }) => assert!(reason.starts_with("3 message")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_invalid_property_is_a_start_error() {
        let e = KafkaTransport::connect(KafkaConfig::new("127.0.0.1:1").set("no.such", "1"))
            .unwrap_err();
        assert!(matches!(e, KafkaStartError::InvalidConfig(_)), "{e}");
    }
}
