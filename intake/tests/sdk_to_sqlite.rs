//! The SDK (native) → `beacon serve` → SQLite, with real parts on 127.0.0.1: 100 000 events of
//! every standard type from 4 threads stored exactly once; and the same with the server
//! killed (SIGKILL) and restarted mid-stream.

mod common;

use std::time::Duration;

use beacon::transport::HttpTransport;
use beacon::{attrs, BatchConfig, Client, Level, RetryPolicy};
use common::*;

const THREADS: u64 = 4;
const PER_THREAD: u64 = 25_000;
const TOTAL: u64 = THREADS * PER_THREAD;

fn client(url: &str) -> Client {
    Client::builder()
        .service_name("e2e")
        .transport(HttpTransport::new(url).unwrap())
        .batch_config(BatchConfig {
            max_queue_items: 2 * TOTAL as usize,
            max_memory_bytes: 256 * 1024 * 1024,
            flush_interval: Duration::from_millis(100),
            ..BatchConfig::default()
        })
        .retry_policy(RetryPolicy {
            max_attempts: 50,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            budget: Duration::from_secs(20),
        })
        .build()
        .unwrap()
}

/// Records event `n` as one of the seven standard types, each tagged with `n`.
fn record(c: &Client, n: u64) {
    let time = beacon::schema::format_rfc3339_ms(1_795_314_570_000 + n);
    let id = format!("raw-{n}");
    match n % 7 {
        0 => c.record("behavioral", "click", &attrs!["n" => n]),
        1 => c.log(Level::Info, "hello", &attrs!["n" => n]),
        2 => c.record_metric("latency", n as f64, &attrs!["n" => n]),
        3 => {
            let mut s = c.span("work");
            s.set_attr("n", n);
            s.end();
        }
        4 => c
            .record_raw(&serde_json::json!({"event_id": id, "event_time": time,
                "event_type": "usage", "event_name": "usage", "resource_id": "db",
                "app_feature": "search", "unit": "milliseconds", "amount": 1, "n": n}))
            .unwrap(),
        5 => c
            .record_raw(&serde_json::json!({"event_id": id, "event_time": time,
                "event_type": "rollup", "event_name": "stats", "n": n}))
            .unwrap(),
        _ => c
            .record_raw(&serde_json::json!({"event_id": id, "event_time": time,
                "event_type": "client_report", "event_name": "dropped",
                "dropped_queue_full": 0, "n": n}))
            .unwrap(),
    }
}

/// Records all events from 4 threads; `pace` sleeps 1 ms every `pace` events.
fn record_all(c: &Client, pace: Option<u64>) {
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    record(&c, t * PER_THREAD + i);
                    if pace.is_some_and(|p| i % p == 0) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// Flushes until nothing is queued or in flight (at most 120 s).
fn drain(c: &Client) {
    let done = wait_until(Duration::from_secs(120), || {
        let _ = c.flush_blocking(Duration::from_secs(30));
        let s = c.stats();
        s.queued_items == 0 && s.inflight_items == 0
    });
    assert!(done, "the SDK did not deliver everything: {:?}", c.stats());
}

fn check_exactly_once(db: &std::path::Path) {
    let tagged = "FROM events WHERE json_extract(data, '$.n') IS NOT NULL";
    assert_eq!(
        count(db, &format!("SELECT count(*) {tagged}")),
        TOTAL as i64
    );
    assert_eq!(
        count(
            db,
            &format!("SELECT count(DISTINCT json_extract(data, '$.n')) {tagged}")
        ),
        TOTAL as i64,
        "every event stored once"
    );
    assert_eq!(
        count(
            db,
            &format!("SELECT min(json_extract(data, '$.n')) {tagged}")
        ),
        0
    );
    assert_eq!(
        count(
            db,
            &format!("SELECT max(json_extract(data, '$.n')) {tagged}")
        ),
        TOTAL as i64 - 1
    );
    for (i, ty) in [
        "behavioral",
        "log",
        "metric",
        "span",
        "usage",
        "rollup",
        "client_report",
    ]
    .iter()
    .enumerate()
    {
        let expected = (0..TOTAL).filter(|n| n % 7 == i as u64).count() as i64;
        assert_eq!(
            count(
                db,
                &format!("SELECT count(*) {tagged} AND event_type = '{ty}'")
            ),
            expected,
            "{ty}"
        );
    }
    // No event_id appears twice (the UNIQUE constraint says so; check the data agrees).
    assert_eq!(
        count(db, "SELECT count(*) - count(DISTINCT event_id) FROM events"),
        0
    );
}

#[test]
fn sdk_to_sqlite_100k_events_of_every_type_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let c = client(&server.url());
    record_all(&c, None);
    drain(&c);
    let stats = c.stats();
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    let db = server.db();
    let (status, err) = server.terminate();
    assert!(status.success(), "serve exited with {status}: {err}");
    check_exactly_once(&db);
    let _ = c.shutdown_blocking(Duration::from_secs(5));
}

#[test]
fn sigkill_mid_stream_loses_nothing_acknowledged_and_stores_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port = server.port();
    let db = server.db();
    let c = client(&server.url());
    let c2 = c.clone();
    let producer = std::thread::spawn(move || record_all(&c2, Some(50)));

    // Kill the server once part of the stream is stored.
    let started = wait_until(Duration::from_secs(120), || {
        count(&db, "SELECT count(*) FROM events") >= 10_000
    });
    assert!(started, "nothing was stored");
    let acknowledged = c.stats().delivered;
    server.kill();
    // Every event the server answered 2xx for was committed before the answer.
    let stored_at_kill = count(&db, "SELECT count(*) FROM events");
    assert!(
        stored_at_kill as u64 >= acknowledged,
        "{acknowledged} acknowledged but only {stored_at_kill} stored"
    );
    assert!(
        (stored_at_kill as u64) < TOTAL,
        "the kill came too late to test anything"
    );

    // Down for a while: the SDK keeps retrying and queueing.
    std::thread::sleep(Duration::from_millis(300));
    let restarted = Server::start_on(&format!("127.0.0.1:{port}"), dir.path(), &[]);
    producer.join().unwrap();
    drain(&c);
    assert_eq!(c.stats().dropped.total(), 0, "{:?}", c.stats());
    let (status, err) = restarted.terminate();
    assert!(status.success(), "serve exited with {status}: {err}");
    check_exactly_once(&db);
    let _ = c.shutdown_blocking(Duration::from_secs(5));
}
