//! Proxy mode with real parts: SDK → `beacon serve --forward` → upstream `beacon serve` →
//! SQLite, with the upstream down for a while. Nothing the proxy queued is lost; past its
//! bound the proxy answers 503 (the sender keeps its items and retries), and what a sender
//! had to drop past its own bound is counted and reported as `client_report` items.

mod common;

use std::time::Duration;

use beacon::transport::HttpTransport;
use beacon::{attrs, BatchConfig, Client, RetryPolicy};
use common::*;
use serde_json::{json, Value};

const PROXY_BOUND: usize = 2_000;

#[test]
fn proxy_keeps_what_it_queued_while_upstream_is_down() {
    let up_dir = tempfile::tempdir().unwrap();
    let proxy_dir = tempfile::tempdir().unwrap();
    let upstream = Server::start(up_dir.path(), &["--token", "up-secret"]);
    let up_port = upstream.port();
    let db = upstream.db();
    let bound = PROXY_BOUND.to_string();
    let proxy = Server::start(
        proxy_dir.path(),
        &[
            "--forward",
            &upstream.url(),
            "--forward-token",
            "up-secret",
            "--forward-queue-items",
            &bound,
            "--forward-max-backoff-ms",
            "300",
        ],
    );
    // While the upstream is up, an event goes straight through.
    let r = http()
        .post(proxy.url())
        .header("content-type", "application/json")
        .body(json!([ev("p-first", "behavioral", "x")]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(wait_until(Duration::from_secs(30), || count(
        &db,
        "SELECT count(*) FROM events WHERE event_id = 'p-first'"
    ) == 1));

    // The upstream goes down.
    upstream.kill();

    // An SDK app sends 1 500 events through the proxy: all answered as soon as queued.
    let app = Client::builder()
        .service_name("app")
        .transport(HttpTransport::new(proxy.url()).unwrap())
        .batch_config(BatchConfig {
            max_queue_items: 500,
            flush_interval: Duration::from_millis(100),
            ..BatchConfig::default()
        })
        .retry_policy(RetryPolicy {
            max_attempts: 20,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            budget: Duration::from_secs(5),
        })
        .build()
        .unwrap();
    let mut recorded = 0u64;
    for _ in 0..3 {
        for _ in 0..500 {
            app.record("behavioral", "through-proxy", &attrs!["n" => recorded]);
            recorded += 1;
        }
        app.flush_blocking(Duration::from_secs(30)).unwrap();
    }
    assert_eq!(app.stats().delivered, 1_500, "{:?}", app.stats());

    // Raw batches of 200 fill the proxy to its bound; past it, 503 with Retry-After.
    let mut queued_raw = Vec::new();
    let mut refused = None;
    for b in 0..5 {
        let batch: Vec<Value> = (0..200)
            .map(|i| ev(&format!("raw-{b}-{i}"), "behavioral", "raw"))
            .collect();
        let r = http()
            .post(proxy.url())
            .header("content-type", "application/json")
            .body(Value::Array(batch).to_string())
            .send()
            .unwrap();
        if r.status().as_u16() == 200 {
            queued_raw.push(b);
        } else {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the proxy refused nothing past its bound");
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let msg: Value = r.json().unwrap();
    assert!(
        msg["error"]
            .as_str()
            .unwrap()
            .contains("forward queue full"),
        "{msg}"
    );
    assert!(!queued_raw.is_empty());

    // The app keeps recording: the proxy refuses it, so past the app's own bound (500 held)
    // its items are dropped and counted.
    for _ in 0..1_000 {
        app.record("behavioral", "through-proxy", &attrs!["n" => recorded]);
        recorded += 1;
    }
    let _ = app.flush_blocking(Duration::from_secs(10));
    let dropped = app.stats().dropped.queue_full;
    assert!(dropped > 0, "{:?}", app.stats());

    // The upstream comes back on the same port.
    let upstream = Server::start_on(
        &format!("127.0.0.1:{up_port}"),
        up_dir.path(),
        &["--token", "up-secret"],
    );
    // The app's retries and drop report get through; the proxy's queue drains.
    let through = "SELECT count(*) FROM events WHERE event_name = 'through-proxy'";
    let ok = wait_until(Duration::from_secs(120), || {
        let _ = app.flush_blocking(Duration::from_secs(5));
        let s = app.stats();
        s.queued_items == 0
            && s.inflight_items == 0
            && count(&db, through) as u64 + s.dropped.queue_full == recorded
    });
    let s = app.stats();
    assert!(
        ok,
        "stored {} of {recorded}, app stats {s:?}",
        count(&db, through)
    );

    // Every raw batch the proxy acknowledged is upstream; none of the refused one is.
    for b in &queued_raw {
        assert_eq!(
            count(
                &db,
                &format!("SELECT count(*) FROM events WHERE event_id LIKE 'raw-{b}-%'")
            ),
            200
        );
    }
    let refused_b = queued_raw.len();
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM events WHERE event_id LIKE 'raw-{refused_b}-%'")
        ),
        0
    );
    // Stored exactly once each, and the drops were reported upstream as client_report items.
    assert_eq!(
        count(&db, "SELECT count(DISTINCT json_extract(data, '$.n')) FROM events WHERE event_name = 'through-proxy'"),
        recorded as i64 - s.dropped.queue_full as i64
    );
    let reported = wait_until(Duration::from_secs(60), || {
        let _ = app.flush_blocking(Duration::from_secs(5));
        count(
            &db,
            "SELECT coalesce(sum(json_extract(data, '$.dropped_queue_full')), 0) FROM events
             WHERE event_type = 'client_report' AND json_extract(data, '$.service_name') = 'app'",
        ) as u64
            == app.stats().dropped.queue_full
    });
    assert!(
        reported,
        "client_report items upstream do not add up to {:?}",
        app.stats().dropped
    );

    // Graceful shutdown flushes the proxy's queue.
    let r = http()
        .post(proxy.url())
        .header("content-type", "application/json")
        .body(json!([ev("p-last", "behavioral", "x")]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, err) = proxy.terminate();
    assert!(status.success(), "{err}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE event_id = 'p-last'"),
        1
    );
    let _ = app.shutdown_blocking(Duration::from_secs(5));
    drop(upstream);
}
