//! The HTTP transport against a real HTTP server on 127.0.0.1 that the test tells to answer
//! 500, 429 with `Retry-After`, or slowly.

mod common;

use std::time::Duration;

use beacon::transport::{BodyFormat, HttpTransport};
use beacon::{attrs, BatchConfig, Client, RetryPolicy, UsageUnit};
use common::{Reply, TestServer};

fn client(server: &TestServer, cfg: BatchConfig, retry: RetryPolicy) -> Client {
    client_with_timeout(server, cfg, retry, Duration::from_secs(30))
}

fn client_with_timeout(
    server: &TestServer,
    cfg: BatchConfig,
    retry: RetryPolicy,
    timeout: Duration,
) -> Client {
    Client::builder()
        .service_name("http-test")
        .batch_config(cfg)
        .retry_policy(retry)
        .transport(
            HttpTransport::builder(server.url())
                .bearer_token("s3cret")
                .timeout(timeout)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        budget: Duration::from_secs(10),
    }
}

fn quiet() -> BatchConfig {
    BatchConfig {
        flush_interval: Duration::from_secs(3600),
        ..BatchConfig::default()
    }
}

fn assert_exactly_once(server: &TestServer, expected: usize) {
    let stored = server.stored();
    let events = stored.len();
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "stored more than once: {:?}",
        &twice[..twice.len().min(5)]
    );
    assert_eq!(events, expected);
}

#[test]
fn every_event_arrives_exactly_once_on_a_healthy_server() {
    let server = TestServer::start();
    let c = client(&server, quiet(), fast_retry());
    for i in 0..10_000 {
        c.record("behavioral", "click", &attrs!["i" => i, "page" => "/home"]);
    }
    c.log(beacon::Level::Info, "hello", &[]);
    c.counter("clicks", 10_000.0, &[]);
    c.usage("cpu", "render", 5, UsageUnit::Milliseconds);
    drop(c.span("s"));
    c.flush_blocking(Duration::from_secs(30)).unwrap();
    // 10 000 events, 1 log, 1 counter, 1 span (the usage bucket is still open).
    assert_exactly_once(&server, 10_003);
    let reqs = server.requests();
    assert!(reqs
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer s3cret")));
    assert!(reqs
        .iter()
        .all(|r| r.content_type == "application/x-ndjson"));
    assert!(reqs.iter().any(|r| r.gzip), "bodies over 1 KiB are gzipped");
    assert!(
        reqs.iter().all(|r| r.items <= 500),
        "batches bounded by max_batch_size"
    );
    for item in server.items() {
        beacon::schema::validate_object(item.as_object().unwrap(), 32 * 1024).unwrap();
    }
}

#[test]
fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    let server = TestServer::start();
    let c = client(&server, quiet(), fast_retry());
    server.script([Reply::RetryAfter(429, "1".into())]);
    c.record("behavioral", "a", &[]);
    c.flush_blocking(Duration::from_secs(10)).unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].status, 429);
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before Retry-After: 1"
    );
    // The HTTP-date form: two seconds from now, rounded down to the second by the format.
    let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    server.script([Reply::RetryAfter(503, when)]);
    c.record("behavioral", "b", &[]);
    c.flush_blocking(Duration::from_secs(10)).unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    let gap = reqs[3].at - reqs[2].at;
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    assert_exactly_once(&server, 2);
}

#[test]
fn intermittent_500s_lose_nothing_within_the_bound() {
    let server = TestServer::start();
    let c = client(
        &server,
        BatchConfig {
            max_batch_size: 100,
            ..quiet()
        },
        fast_retry(),
    );
    // Two out of every three requests fail, for a while.
    server.script((0..60).map(|i| {
        if i % 3 == 2 {
            Reply::Ok
        } else {
            Reply::Status(500)
        }
    }));
    for i in 0..5_000 {
        c.record("behavioral", "e", &attrs!["i" => i]);
    }
    let mut tries = 0;
    while c.flush_blocking(Duration::from_secs(30)).is_err() {
        tries += 1;
        assert!(tries < 20, "never recovered");
    }
    assert_exactly_once(&server, 5_000);
    assert!(server.requests().iter().any(|r| r.status == 500));
    assert_eq!(c.stats().dropped.total(), 0);
}

#[test]
fn a_server_that_stays_down_drops_exactly_past_the_bound_and_reports_it() {
    let server = TestServer::start();
    let c = client(
        &server,
        BatchConfig {
            max_queue_items: 1_000,
            ..quiet()
        },
        RetryPolicy {
            max_attempts: 3,
            ..fast_retry()
        },
    );
    server.set_default(Some(Reply::Status(503)));
    for i in 0..1_500 {
        c.record("behavioral", "e", &attrs!["i" => i]);
    }
    assert!(c.flush_blocking(Duration::from_secs(10)).is_err());
    let s = c.stats();
    assert_eq!(s.dropped.queue_full, 500);
    assert_eq!(s.queued_items, 1_000);
    assert!(server.stored().is_empty());
    // Back up.
    server.set_default(None);
    c.flush_blocking(Duration::from_secs(30)).unwrap();
    let items = server.items();
    let events = items
        .iter()
        .filter(|v| v["event_type"] == "behavioral")
        .count();
    assert_eq!(events, 1_000);
    let report: Vec<_> = items
        .iter()
        .filter(|v| v["event_type"] == "client_report")
        .collect();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0]["dropped_queue_full"], 500);
    assert_eq!(report[0]["service_name"], "http-test");
}

#[test]
fn a_slow_server_times_out_and_the_retry_delivers() {
    let server = TestServer::start();
    let c = client_with_timeout(&server, quiet(), fast_retry(), Duration::from_millis(500));
    server.script([Reply::Slow(Duration::from_millis(1500))]);
    for i in 0..10 {
        c.record("behavioral", "e", &attrs!["i" => i]);
    }
    c.flush_blocking(Duration::from_secs(10)).unwrap();
    // The slow request was cut off by the client's 500 ms timeout and retried. Delivery is at
    // least once (an intake de-duplicates by event_id): every event is there.
    let stored = server.stored();
    assert_eq!(stored.len(), 10);
    let reqs = server.requests();
    assert!(reqs.len() >= 2, "{reqs:?}");
}

#[test]
fn a_rejected_batch_is_counted_as_delivery_failed() {
    let server = TestServer::start();
    let c = client(&server, quiet(), fast_retry());
    server.script([Reply::Status(400)]);
    for _ in 0..7 {
        c.record("behavioral", "e", &[]);
    }
    c.flush_blocking(Duration::from_secs(10)).unwrap();
    assert_eq!(c.stats().dropped.delivery_failed, 7);
    assert_eq!(server.requests().len(), 1, "400 is not retried");
    c.record("behavioral", "next", &[]);
    c.flush_blocking(Duration::from_secs(10)).unwrap();
    let items = server.items();
    let report = items
        .iter()
        .find(|v| v["event_type"] == "client_report")
        .unwrap();
    assert_eq!(report["dropped_delivery_failed"], 7);
}

#[test]
fn auth_modes_and_json_array_bodies() {
    let server = TestServer::start();
    let basic = Client::builder()
        .transport(
            HttpTransport::builder(server.url())
                .basic_auth("intake-user", "intake-pass")
                .format(BodyFormat::JsonArray)
                .gzip_min_bytes(None)
                .build()
                .unwrap(),
        )
        .batch_config(quiet())
        .build()
        .unwrap();
    basic.record("behavioral", "basic", &[]);
    basic.flush_blocking(Duration::from_secs(10)).unwrap();
    let keyed = Client::builder()
        .transport(
            HttpTransport::builder(server.url())
                .write_key("pk_live_1")
                .build()
                .unwrap(),
        )
        .batch_config(quiet())
        .build()
        .unwrap();
    keyed.record("behavioral", "keyed", &[]);
    keyed.flush_blocking(Duration::from_secs(10)).unwrap();
    let reqs = server.requests();
    // base64("intake-user:intake-pass")
    assert_eq!(
        reqs[0].authorization.as_deref(),
        Some("Basic aW50YWtlLXVzZXI6aW50YWtlLXBhc3M=")
    );
    assert_eq!(reqs[0].content_type, "application/json");
    assert!(server.bodies()[0].starts_with("[{\"event_id\""));
    assert_eq!(reqs[1].key.as_deref(), Some("pk_live_1"));
    assert!(reqs[1].authorization.is_none());
}

#[test]
fn shutdown_and_the_idle_timer_deliver_over_http() {
    let server = TestServer::start();
    let c = client(
        &server,
        BatchConfig {
            flush_interval: Duration::from_millis(100),
            ..BatchConfig::default()
        },
        fast_retry(),
    );
    c.record("behavioral", "idle", &[]);
    for _ in 0..500 {
        if !server.stored().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        server.stored().len(),
        1,
        "the interval flushed an idle queue"
    );
    c.record("behavioral", "last", &[]);
    c.usage("disk", "export", 10, UsageUnit::Bytes);
    drop(c);
    let items = server.items();
    assert!(items.iter().any(|v| v["event_name"] == "last"));
    assert!(items
        .iter()
        .any(|v| v["event_type"] == "usage" && v["amount"] == 10));
}

#[test]
fn eight_threads_times_100_000_events_all_arrive() {
    let server = TestServer::start();
    let c = client(
        &server,
        BatchConfig {
            flush_interval: Duration::from_millis(200),
            max_queue_items: 1_000_000,
            max_memory_bytes: 1 << 30,
            max_batch_size: 2_000,
            max_concurrent_sends: 4,
            ..BatchConfig::default()
        },
        fast_retry(),
    );
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..100_000u64 {
                    c.record("behavioral", "bulk", &attrs!["n" => t * 100_000 + i]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    c.flush_blocking(Duration::from_secs(120)).unwrap();
    assert_eq!(c.stats().dropped.total(), 0);
    assert_exactly_once(&server, 800_000);
}
