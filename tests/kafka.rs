//! The Kafka transport and the usage accountant against a real Kafka-protocol broker: `tansu`
//! on 127.0.0.1, started and stopped by each test ([`beacon::tansu::TansuBroker`]), read back
//! with an rdkafka consumer. Every wait is bounded; no assertion is about timing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon::rt::BoxFuture;
use beacon::tansu::{read_all, ConsumedMessage, TansuBroker};
use beacon::transport::{KafkaConfig, KafkaRecord, KafkaStartError, KafkaTransport};
use beacon::usage_accountant::{UsageAccountant, UsageFlushError};
use beacon::{
    attrs, Batch, BatchConfig, Client, FlushError, Level, RetryPolicy, SendError, Transport,
    UsageUnit,
};

const READ_TIMEOUT: Duration = Duration::from_secs(60);

fn broker(topics: &[&str]) -> TansuBroker {
    let mut b = TansuBroker::start().expect("start tansu");
    for t in topics {
        b.create_topic(t, 3).expect("create topic");
    }
    b
}

/// The Kafka transport, noting every item it is asked to send (`event_id` → JSON), so the
/// test knows what the client produced. It is the client's only transport: a second one
/// would make a Kafka failure a partial delivery, which the core does not retry.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<HashMap<String, String>>>);

struct Noting {
    kafka: KafkaTransport,
    sent: Sent,
}

impl Transport for Noting {
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        {
            let mut sent = self.sent.0.lock().unwrap();
            for i in batch.items() {
                sent.insert(i.event_id().to_owned(), i.json().to_owned());
            }
        }
        self.kafka.send(batch)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.kafka.shutdown()
    }
}

/// A client whose only transport is Kafka (noted in `sent`).
fn client(kafka: KafkaTransport, sent: &Sent) -> Client {
    Client::builder()
        .service_name("kafka-test")
        .transport(Noting {
            kafka,
            sent: sent.clone(),
        })
        .batch_config(BatchConfig {
            flush_interval: Duration::from_millis(200),
            ..BatchConfig::default()
        })
        .retry_policy(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            budget: Duration::from_secs(10),
        })
        .build()
        .expect("client")
}

/// Flushes until everything is delivered, within `within`.
fn flush_until_delivered(client: &Client, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match client.flush_blocking(Duration::from_secs(30)) {
            Ok(()) => return,
            Err(e @ (FlushError::Pending { .. } | FlushError::Timeout)) => {
                assert!(Instant::now() < deadline, "not delivered in time: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("flush: {e}"),
        }
    }
}

/// Every message must be keyed by its own `event_id` and carry the exact JSON the client
/// produced, on its type's topic. Returns the distinct event ids.
fn check_messages(
    messages: &[ConsumedMessage],
    sent: &HashMap<String, String>,
    topic_of: impl Fn(&str) -> String,
) -> HashSet<String> {
    let mut ids = HashSet::new();
    for m in messages {
        let key = m.key_str();
        let payload = m.payload_str();
        let json = sent
            .get(&key)
            .unwrap_or_else(|| panic!("unknown key {key} on {}: {payload}", m.topic));
        assert_eq!(&payload, json, "JSON intact for {key}");
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(v["event_id"], key.as_str());
        assert_eq!(m.topic, topic_of(v["event_type"].as_str().unwrap()));
        ids.insert(key);
    }
    ids
}

fn sent_items(sent: &Sent) -> HashMap<String, String> {
    sent.0.lock().unwrap().clone()
}

#[test]
fn every_event_type_arrives_once_with_its_json_intact() {
    const N: usize = 1000;
    let topics = [
        "beacon-events",
        "beacon-logs",
        "beacon-metrics",
        "beacon-spans",
    ];
    let b = broker(&topics);
    let config = KafkaConfig::new(b.bootstrap_servers())
        .topic_for("log", "beacon-logs")
        .topic_for("metric", "beacon-metrics")
        .topic_for("span", "beacon-spans");
    let kafka = KafkaTransport::connect(config.clone()).expect("connect");
    let memory = Sent::default();
    let c = client(kafka, &memory);

    let types = [
        "behavioral",
        "log",
        "metric",
        "span",
        "usage",
        "rollup",
        "client_report",
    ];
    for i in 0..N {
        c.record(
            "behavioral",
            "login-start",
            &attrs!["i" => i as i64, "text" => "é \"q\" \n"],
        );
        c.log(Level::Info, "hello", &attrs!["i" => i as i64]);
        c.record_metric("latency", i as f64 / 3.0, &attrs!["route" => "/pay"]);
        let mut span = c.span("work");
        span.set_attr("i", i as i64);
        span.end();
        c.record("usage", "usage", &attrs!["resource_id" => "relay", "app_feature" => "spans", "unit" => "bytes", "amount" => i as i64]);
        c.record("rollup", "stats", &attrs!["i" => i as i64]);
        c.record("client_report", "drops", &attrs!["i" => i as i64]);
    }
    flush_until_delivered(&c, Duration::from_secs(120));

    let sent = sent_items(&memory);
    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    for json in sent.values() {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        *per_type
            .entry(v["event_type"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for t in types {
        assert_eq!(per_type.get(t), Some(&N), "recorded {t}: {per_type:?}");
    }

    let messages = read_all(&b.bootstrap_servers(), &topics, READ_TIMEOUT).expect("read back");
    let ids = check_messages(&messages, &sent, |t| config.topic(t).to_owned());
    assert_eq!(messages.len(), N * types.len(), "one message per item");
    assert_eq!(ids.len(), N * types.len(), "distinct event ids");
    assert_eq!(ids, sent.keys().cloned().collect::<HashSet<_>>());
    c.shutdown_blocking(Duration::from_secs(10))
        .expect("shutdown");
}

/// A clock the test moves by hand (Unix ms).
fn manual_clock(start_ms: u64) -> (Arc<AtomicU64>, impl Fn() -> u64 + Send + Sync + 'static) {
    let now = Arc::new(AtomicU64::new(start_ms));
    let read = now.clone();
    (now, move || read.load(Ordering::SeqCst))
}

fn sentry_message(ts: u64, resource: &str, feature: &str, unit: &str, amount: u64) -> String {
    format!(
        "{{\"timestamp\":{ts},\"shared_resource_id\":\"{resource}\",\"app_feature\":\"{feature}\",\"usage_unit\":\"{unit}\",\"amount\":{amount}}}"
    )
}

#[test]
fn usage_messages_are_sentrys_with_the_sum_of_each_bucket() {
    let b = broker(&["shared-resources-usage"]);
    // 2023-11-14T22:13:00Z, a minute boundary.
    let t0: u64 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
    let (now, clock) = manual_clock(t0);
    let accountant = UsageAccountant::builder(KafkaConfig::new(b.bootstrap_servers()))
        .clock(clock)
        .build()
        .expect("accountant");
    assert_eq!(accountant.granularity_ms(), 60_000);

    let mut want: BTreeMap<(u64, &str, &str, &str), u64> = BTreeMap::new();
    let units = [
        (UsageUnit::Bytes, "bytes"),
        (UsageUnit::Milliseconds, "milliseconds"),
        (UsageUnit::BytesSec, "bytes_sec"),
    ];
    for bucket in 0..3u64 {
        for step in 0..30u64 {
            now.store(t0 + bucket * 60_000 + step * 1_999, Ordering::SeqCst);
            for (r, resource) in ["relay", "snuba"].into_iter().enumerate() {
                for (f, feature) in ["spans", "transactions"].into_iter().enumerate() {
                    let (unit, unit_name) = units[(r + f + step as usize) % 3];
                    let amount = 1 + step * 7 + r as u64 * 100 + f as u64 * 1000;
                    accountant.record(resource, feature, amount, unit);
                    *want
                        .entry((t0 / 1000 + bucket * 60, resource, feature, unit_name))
                        .or_default() += amount;
                }
            }
        }
    }
    accountant.flush().expect("flush");
    assert_eq!(accountant.pending(), 0);

    let messages = read_all(
        &b.bootstrap_servers(),
        &["shared-resources-usage"],
        READ_TIMEOUT,
    )
    .unwrap();
    let mut got: BTreeMap<String, String> = BTreeMap::new();
    for m in &messages {
        assert!(
            got.insert(m.key_str(), m.payload_str()).is_none(),
            "one message per bucket"
        );
    }
    let expected: BTreeMap<String, String> = want
        .iter()
        .map(|((ts, r, f, u), amount)| {
            (
                format!("[{ts},\"{r}\",\"{f}\",\"{u}\"]"),
                sentry_message(*ts, r, f, u, *amount),
            )
        })
        .collect();
    assert_eq!(got, expected);
    drop(accountant);
}

#[test]
fn usage_buckets_close_on_the_timer_without_record_or_flush() {
    let b = broker(&["shared-resources-usage"]);
    let t0: u64 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
    let (now, clock) = manual_clock(t0 + 5_000);
    let accountant = UsageAccountant::builder(KafkaConfig::new(b.bootstrap_servers()))
        .clock(clock)
        .build()
        .expect("accountant");
    accountant.record("relay", "spans", 40, UsageUnit::Bytes);
    accountant.record("relay", "spans", 2, UsageUnit::Bytes);
    // The bucket closes: nobody records or flushes; the accountant's timer must send it.
    now.store(t0 + 60_000, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(60);
    let messages = loop {
        let m = read_all(
            &b.bootstrap_servers(),
            &["shared-resources-usage"],
            READ_TIMEOUT,
        )
        .unwrap();
        if !m.is_empty() || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(messages.len(), 1, "the closed bucket was sent by the timer");
    assert_eq!(
        messages[0].payload_str(),
        sentry_message(t0 / 1000, "relay", "spans", "bytes", 42)
    );
    assert_eq!(accountant.pending(), 0);
}

#[test]
fn a_bucket_flushed_open_sends_its_later_records_as_another_part() {
    let b = broker(&["shared-resources-usage"]);
    let t0: u64 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
    let (now, clock) = manual_clock(t0);
    let accountant = UsageAccountant::builder(KafkaConfig::new(b.bootstrap_servers()))
        .clock(clock)
        .build()
        .expect("accountant");
    accountant.record("relay", "spans", 10, UsageUnit::Bytes);
    accountant.flush().expect("flush");
    accountant.record("relay", "spans", 5, UsageUnit::Bytes);
    now.store(t0 + 60_000, Ordering::SeqCst);
    accountant.flush().expect("flush");
    let messages = read_all(
        &b.bootstrap_servers(),
        &["shared-resources-usage"],
        READ_TIMEOUT,
    )
    .unwrap();
    let got: BTreeMap<String, String> = messages
        .iter()
        .map(|m| (m.key_str(), m.payload_str()))
        .collect();
    let ts = t0 / 1000;
    let want: BTreeMap<String, String> = [
        (
            format!("[{ts},\"relay\",\"spans\",\"bytes\"]"),
            sentry_message(ts, "relay", "spans", "bytes", 10),
        ),
        (
            format!("[{ts},\"relay\",\"spans\",\"bytes\",1]"),
            sentry_message(ts, "relay", "spans", "bytes", 5),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(messages.len(), 2);
    assert_eq!(got, want, "summing the parts gives the bucket's total");
}

#[test]
fn a_broker_outage_loses_nothing_that_was_recorded() {
    const N: usize = 500;
    let mut b = broker(&["beacon-events", "shared-resources-usage"]);
    let config = KafkaConfig::new(b.bootstrap_servers())
        // Failures surface within seconds instead of librdkafka's 30 s default.
        .set("message.timeout.ms", "3000")
        .set("reconnect.backoff.max.ms", "500");
    let kafka = KafkaTransport::connect(config.clone()).expect("connect");
    let memory = Sent::default();
    let c = client(kafka, &memory);
    let t0: u64 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
    let (now, clock) = manual_clock(t0);
    let accountant = UsageAccountant::builder(config.clone())
        .clock(clock)
        .build()
        .expect("accountant");

    // Before the outage.
    for i in 0..N {
        c.record("behavioral", "before", &attrs!["i" => i as i64]);
    }
    accountant.record("relay", "spans", 7, UsageUnit::Bytes);
    flush_until_delivered(&c, Duration::from_secs(60));
    accountant.flush().expect("usage flush before the outage");
    let before_ids: HashSet<String> = sent_items(&memory).into_keys().collect();
    let before = read_all(&b.bootstrap_servers(), &["beacon-events"], READ_TIMEOUT).unwrap();
    let ids = check_messages(&before, &sent_items(&memory), |_| "beacon-events".into());
    assert_eq!(ids, before_ids);
    assert_eq!(ids.len(), N);

    // The broker goes away; recording goes on.
    b.stop();
    let failed_before = c.stats().batches_failed;
    for i in 0..N {
        c.record("behavioral", "during", &attrs!["i" => i as i64]);
    }
    now.store(t0 + 1_000, Ordering::SeqCst);
    accountant.record("relay", "spans", 30, UsageUnit::Bytes);
    accountant.record("relay", "spans", 12, UsageUnit::Bytes);
    match accountant.flush() {
        Err(UsageFlushError::NotDelivered { pending, .. }) => assert_eq!(pending, 1),
        other => panic!("usage flush with the broker down: {other:?}"),
    }
    assert_eq!(accountant.pending(), 1, "the unsent sum is kept");
    // Wait until the client has seen a delivery fail (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.stats().batches_failed == failed_before {
        assert!(Instant::now() < deadline, "no delivery failure seen");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.stats().queued_items + c.stats().inflight_items > 0);

    // The broker comes back (empty: tansu's storage here is in memory).
    b.restart().expect("restart tansu");
    flush_until_delivered(&c, Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match accountant.flush() {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "usage never delivered: {e}"),
        }
    }
    assert_eq!(accountant.pending(), 0);
    assert_eq!(accountant.dropped(), 0);

    let sent = sent_items(&memory);
    let during_ids: HashSet<String> = sent
        .keys()
        .filter(|id| !before_ids.contains(*id))
        .cloned()
        .collect();
    assert_eq!(during_ids.len(), N);
    let after = read_all(&b.bootstrap_servers(), &["beacon-events"], READ_TIMEOUT).unwrap();
    let ids = check_messages(&after, &sent, |_| "beacon-events".into());
    // Re-sends after an ambiguous failure may duplicate a message; the key removes them.
    assert!(ids.is_superset(&during_ids), "everything recorded arrived");
    assert!(ids
        .difference(&during_ids)
        .all(|id| before_ids.contains(id)));

    let usage = read_all(
        &b.bootstrap_servers(),
        &["shared-resources-usage"],
        READ_TIMEOUT,
    )
    .unwrap();
    let by_key: BTreeMap<String, String> = usage
        .iter()
        .map(|m| (m.key_str(), m.payload_str()))
        .collect();
    let ts = t0 / 1000;
    assert_eq!(
        by_key,
        [(
            format!("[{ts},\"relay\",\"spans\",\"bytes\",1]"),
            sentry_message(ts, "relay", "spans", "bytes", 42)
        )]
        .into_iter()
        .collect(),
        "the part recorded during the outage, once per key"
    );
    assert_eq!(c.stats().dropped.total(), 0);
    c.shutdown_blocking(Duration::from_secs(10))
        .expect("shutdown");
}

#[test]
fn an_unreachable_broker_is_a_clear_error_at_start_up() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config =
        KafkaConfig::new(format!("127.0.0.1:{port}")).startup_timeout(Duration::from_secs(2));
    let err = KafkaTransport::connect(config.clone()).unwrap_err();
    match &err {
        KafkaStartError::Unreachable { brokers, .. } => {
            assert_eq!(brokers, &format!("127.0.0.1:{port}"))
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("answered within 2000 ms"), "{text}");

    let err = UsageAccountant::new_with_kafka(config, None, None).unwrap_err();
    assert!(matches!(err, KafkaStartError::Unreachable { .. }), "{err}");
}

#[test]
fn a_missing_topic_is_a_start_error_unless_allowed() {
    let b = broker(&["beacon-events"]);
    let config = KafkaConfig::new(b.bootstrap_servers()).topic_for("log", "no-such-topic");
    match KafkaTransport::connect(config.clone()) {
        Err(KafkaStartError::MissingTopic { topic, .. }) => assert_eq!(topic, "no-such-topic"),
        other => panic!("{other:?}"),
    }
    KafkaTransport::connect(config.require_topics(false)).expect("allowed");
}

#[test]
fn a_message_the_broker_can_never_take_gives_up_and_the_rest_is_delivered() {
    let b = broker(&["beacon-events"]);
    let kafka = KafkaTransport::connect(
        KafkaConfig::new(b.bootstrap_servers()).set("message.max.bytes", "2000"),
    )
    .expect("connect");
    let big = vec![b'x'; 4000];
    let small = br#"{"ok":true}"#;
    let records = [
        KafkaRecord {
            event_type: "behavioral",
            key: b"small-1",
            payload: small,
        },
        KafkaRecord {
            event_type: "behavioral",
            key: b"big",
            payload: &big,
        },
        KafkaRecord {
            event_type: "behavioral",
            key: b"small-2",
            payload: small,
        },
    ];
    let result = futures_executor_block_on(kafka.produce(records));
    match result {
        Err(SendError::GiveUp { reason }) => assert!(reason.contains("1 message"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let messages = read_all(&b.bootstrap_servers(), &["beacon-events"], READ_TIMEOUT).unwrap();
    let keys: HashSet<String> = messages.iter().map(ConsumedMessage::key_str).collect();
    assert_eq!(keys, ["small-1", "small-2"].map(String::from).into());
}

/// Runs a future to completion on a current-thread tokio runtime (the transport's waits use
/// tokio timers natively).
fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
