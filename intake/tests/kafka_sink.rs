//! `beacon serve --kafka-brokers` against a real Kafka-protocol broker (`tansu` on 127.0.0.1,
//! started and stopped here): every HTTP-acknowledged event is in its topic, keyed by its
//! `event_id`; repeats are answered as duplicates; a full producer queue sheds load with 503
//! and `Retry-After`; an unreachable broker stops start-up with a clear error.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use beacon::tansu::{read_all, TansuBroker};
use common::*;

const TYPES: [&str; 7] = [
    "behavioral",
    "log",
    "metric",
    "span",
    "usage",
    "rollup",
    "client_report",
];

/// An event of type `ty` with the fields its type requires.
fn typed(id: &str, ty: &str, n: usize) -> serde_json::Value {
    let mut e = ev(id, ty, "e");
    let extra = match ty {
        "metric" => serde_json::json!({"metric_type": "value", "value": n as f64 / 4.0}),
        "log" => serde_json::json!({"level": "info", "message": "hello"}),
        "span" => serde_json::json!({
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            "duration_ms": 1.5,
            "status": "ok",
        }),
        "usage" => serde_json::json!({
            "resource_id": "relay", "app_feature": "spans", "unit": "bytes", "amount": n,
        }),
        _ => serde_json::json!({}),
    };
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e["n"] = n.into();
    e["text"] = "é \"q\"".into();
    e
}

fn ndjson(events: &[serde_json::Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

fn post(url: &str, body: String) -> (u16, Option<String>, serde_json::Value) {
    let r = http()
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .expect("post");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().unwrap_or_default();
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn acknowledged_events_are_all_in_kafka_once() {
    let mut b = TansuBroker::start().expect("tansu");
    b.create_topic("beacon-events", 3).unwrap();
    b.create_topic("beacon-logs", 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let brokers = b.bootstrap_servers();
    let server = Server::start(
        dir.path(),
        &[
            "--kafka-brokers",
            &brokers,
            "--kafka-topic-for",
            "log=beacon-logs",
        ],
    );
    let mut sent: HashMap<String, serde_json::Value> = HashMap::new();
    for req in 0..10 {
        let events: Vec<serde_json::Value> = (0..350)
            .map(|i| {
                let n = req * 350 + i;
                typed(&format!("id-{n}"), TYPES[n % TYPES.len()], n)
            })
            .collect();
        let (status, _, answer) = post(&server.url(), ndjson(&events));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], 350, "{answer}");
        for e in events {
            sent.insert(e["event_id"].as_str().unwrap().to_owned(), e);
        }
    }
    // A client retry of a request this intake already delivered.
    let again: Vec<serde_json::Value> = (0..5).map(|n| sent[&format!("id-{n}")].clone()).collect();
    let (status, _, answer) = post(&server.url(), ndjson(&again));
    assert_eq!(status, 200);
    assert_eq!(answer["accepted"], 0, "{answer}");
    assert_eq!(answer["duplicates"], 5, "{answer}");

    let messages = read_all(
        &brokers,
        &["beacon-events", "beacon-logs"],
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(
        messages.len(),
        sent.len(),
        "one message per acknowledged event"
    );
    let mut ids = HashSet::new();
    for m in &messages {
        let got: serde_json::Value = serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap();
        let id = m.key_str();
        assert_eq!(got["event_id"], id.as_str());
        let want = &sent[&id];
        // The intake writes the canonical form; its content is the event as sent.
        let mut want_canonical = want.clone();
        want_canonical["event_time"] = "2026-11-22T02:19:30.123Z".into();
        assert_eq!(&got, &want_canonical);
        let topic = if want["event_type"] == "log" {
            "beacon-logs"
        } else {
            "beacon-events"
        };
        assert_eq!(m.topic, topic);
        ids.insert(id);
    }
    assert_eq!(ids, sent.keys().cloned().collect::<HashSet<_>>());
    let (st, err) = server.terminate();
    assert!(st.success(), "{err}");
    b.stop();
}

#[test]
fn a_full_producer_queue_sheds_load_with_503_and_retry_after() {
    let mut b = TansuBroker::start().expect("tansu");
    b.create_topic("beacon-events", 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--kafka-brokers",
            &b.bootstrap_servers(),
            "--kafka-set",
            "queue.buffering.max.messages=10",
        ],
    );
    let events: Vec<serde_json::Value> = (0..50)
        .map(|n| ev(&format!("big-{n}"), "behavioral", "e"))
        .collect();
    let (status, retry, answer) = post(&server.url(), ndjson(&events));
    assert_eq!(status, 503, "{answer}");
    assert_eq!(retry.as_deref(), Some("1"));
    // A request that fits goes through.
    let (status, _, answer) = post(&server.url(), ndjson(&events[..5]));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 5);
}

#[test]
fn an_unreachable_broker_stops_start_up_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    // librdkafka's metadata request gives up within the sink's 10 s start-up timeout.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--kafka-brokers", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .expect("run beacon serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("no Kafka broker at 127.0.0.1:{port} answered")),
        "{err}"
    );
}
