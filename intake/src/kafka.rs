//! Kafka sink (feature `kafka`): valid items are produced with the SDK's
//! [`KafkaTransport`] — topic per `event_type` (or one topic), key = `event_id`, idempotent,
//! lz4 — and the request is answered only once the broker has acknowledged every item. The
//! intake keeps no state in this mode, so several run side by side behind one address.
//!
//! De-duplication: repeats inside one request, and `event_id`s this process delivered
//! recently (a bounded window), are answered as duplicates and not produced again. Across
//! replicas and restarts the message key (the `event_id`) lets consumers remove the rest.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use beacon::transport::{KafkaConfig, KafkaRecord, KafkaTransport};
use beacon::SendError;

use crate::body::Valid;
use crate::store::Inserted;

/// The `beacon serve` flags of the Kafka sink.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka mode: produce valid events to these brokers (HOST:PORT,…) instead of storing
    /// them; each request is answered once Kafka has acknowledged its events.
    #[arg(long, env = "BEACON_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// The topic for events (unless --kafka-topic-for routes their type elsewhere).
    #[arg(long, env = "BEACON_KAFKA_TOPIC", default_value = beacon::transport::DEFAULT_TOPIC)]
    pub kafka_topic: String,
    /// A topic for one event type, as TYPE=TOPIC (repeatable).
    #[arg(long = "kafka-topic-for", value_name = "TYPE=TOPIC")]
    pub kafka_topic_for: Vec<String>,
    /// A librdkafka property, as KEY=VALUE (repeatable; e.g. security.protocol=SASL_SSL).
    #[arg(long = "kafka-set", value_name = "KEY=VALUE")]
    pub kafka_set: Vec<String>,
}

impl KafkaArgs {
    /// The sink configuration, when `--kafka-brokers` is given.
    pub fn config(&self) -> Result<Option<KafkaSinkConfig>, String> {
        let Some(brokers) = &self.kafka_brokers else {
            return Ok(None);
        };
        let pair = |s: &str, flag: &str| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| format!("{flag} {s:?}: expected A=B"))
        };
        let mut c = KafkaSinkConfig::new(brokers.clone(), self.kafka_topic.clone());
        for s in &self.kafka_topic_for {
            c.topics.push(pair(s, "--kafka-topic-for")?);
        }
        for s in &self.kafka_set {
            c.properties.push(pair(s, "--kafka-set")?);
        }
        Ok(Some(c))
    }
}

/// Where and how to produce.
#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    /// `bootstrap.servers`, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// The topic for every item (`--kafka-topic`).
    pub topic: String,
    /// Topics for particular `event_type`s (`--kafka-topic-for TYPE=TOPIC`).
    pub topics: Vec<(String, String)>,
    /// Further librdkafka properties (`--kafka-set KEY=VALUE`), passed through unchanged.
    pub properties: Vec<(String, String)>,
    /// How many recently delivered `event_id`s are remembered for de-duplication.
    pub dedup_window: usize,
}

impl KafkaSinkConfig {
    /// A configuration with one topic and the defaults.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        KafkaSinkConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            topics: Vec::new(),
            properties: Vec::new(),
            dedup_window: 100_000,
        }
    }

    fn kafka_config(&self) -> KafkaConfig {
        let mut c = KafkaConfig::new(self.brokers.clone())
            .default_topic(self.topic.clone())
            // A server sheds load instead of waiting for room in librdkafka's queue.
            .queue_full_wait(Duration::ZERO);
        for (t, topic) in &self.topics {
            c = c.topic_for(t.clone(), topic.clone());
        }
        for (k, v) in &self.properties {
            c = c.set(k.clone(), v.clone());
        }
        c
    }
}

/// Why a request's items were not produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaSinkError {
    /// The producer queue is full, or the broker is not taking messages now: answer 503
    /// with `Retry-After`.
    Busy {
        /// Seconds the client should wait.
        retry_after: u64,
        /// What happened.
        reason: String,
    },
    /// The broker refused the items for good (e.g. too large, not authorised).
    Refused(String),
}

impl std::fmt::Display for KafkaSinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KafkaSinkError::Busy { reason, .. } => {
                write!(f, "Kafka is busy, retry later: {reason}")
            }
            KafkaSinkError::Refused(r) => write!(f, "Kafka refused the items: {r}"),
        }
    }
}

/// The Kafka sink.
pub struct KafkaSink {
    transport: KafkaTransport,
    recent: Mutex<Recent>,
    window: usize,
}

#[derive(Default)]
struct Recent {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl KafkaSink {
    /// Creates the producer; fails within 10 s when no broker answers or a topic is missing.
    /// Blocks: call it from a blocking context.
    pub fn connect(cfg: &KafkaSinkConfig) -> Result<KafkaSink, String> {
        let transport = KafkaTransport::connect(cfg.kafka_config())
            .map_err(|e| format!("cannot start the Kafka sink: {e}"))?;
        Ok(KafkaSink {
            transport,
            recent: Mutex::new(Recent::default()),
            window: cfg.dedup_window,
        })
    }

    /// Messages produced and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.transport.in_flight()
    }

    /// Produces the request's items and resolves once the broker has all of them.
    pub async fn insert(&self, items: &[Valid]) -> Result<Inserted, KafkaSinkError> {
        let mut fresh: Vec<&Valid> = Vec::with_capacity(items.len());
        let mut duplicates = 0;
        {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            let mut seen: HashSet<&str> = HashSet::with_capacity(items.len());
            for v in items {
                if recent.ids.contains(&v.event_id) || !seen.insert(v.event_id.as_str()) {
                    duplicates += 1;
                } else {
                    fresh.push(v);
                }
            }
        }
        if !self.transport.has_room_for(fresh.len()) {
            return Err(KafkaSinkError::Busy {
                retry_after: 1,
                reason: format!(
                    "the producer queue cannot take {} more messages now",
                    fresh.len()
                ),
            });
        }
        let records = fresh.iter().map(|v| KafkaRecord {
            event_type: &v.event_type,
            key: v.event_id.as_bytes(),
            payload: v.json.as_bytes(),
        });
        match self.transport.produce(records).await {
            Ok(()) => {}
            Err(SendError::Retry { after, reason }) => {
                return Err(KafkaSinkError::Busy {
                    retry_after: after.map_or(1, |d| d.as_secs().max(1)),
                    reason,
                })
            }
            Err(SendError::GiveUp { reason }) => return Err(KafkaSinkError::Refused(reason)),
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        for v in &fresh {
            if recent.ids.insert(v.event_id.clone()) {
                recent.order.push_back(v.event_id.clone());
            }
        }
        while recent.order.len() > self.window {
            if let Some(old) = recent.order.pop_front() {
                recent.ids.remove(&old);
            }
        }
        Ok(Inserted {
            accepted: fresh.len(),
            duplicates,
        })
    }

    /// Waits up to `timeout` for messages still in flight.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), String> {
        // Every answered request was acknowledged already; this only waits for requests cut
        // short by the shutdown.
        let deadline = tokio::time::Instant::now() + timeout;
        while self.transport.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match self.transport.in_flight() {
            0 => Ok(()),
            n => Err(format!(
                "{n} messages were not acknowledged by Kafka before the shutdown timeout"
            )),
        }
    }
}
