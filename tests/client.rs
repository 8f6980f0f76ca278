//! The client and the batching core, end to end into the in-memory transport.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon::transport::MemoryTransport;
use beacon::{
    attrs, Batch, BatchConfig, Client, Level, Overflow, Reporter, RetryPolicy, SendError,
    SpanContext, SpanStatus, UsageUnit, Value,
};
use serde_json::Value as Json;

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        budget: Duration::from_secs(5),
    }
}

fn client_with(mem: &MemoryTransport, cfg: BatchConfig) -> Client {
    Client::builder()
        .service_name("test-svc")
        .service_version("1.2.3")
        .attr("region", "eu")
        .batch_config(cfg)
        .retry_policy(quick_retry())
        .transport(mem.clone())
        .build()
        .unwrap()
}

fn slow_ticks() -> BatchConfig {
    BatchConfig {
        flush_interval: Duration::from_secs(3600),
        ..BatchConfig::default()
    }
}

/// Polls until `f` is true, at most ~10 s.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn of_type<'a>(values: &'a [Json], ty: &str) -> Vec<&'a Json> {
    values.iter().filter(|v| v["event_type"] == ty).collect()
}

#[test]
fn events_carry_the_envelope_and_attribute_precedence() {
    let mem = MemoryTransport::new();
    let client = client_with(&mem, slow_ticks());
    let child = client.with(&attrs!["region" => "us", "tenant" => "acme"]);
    let before_ms = now_ms();
    child.record(
        "behavioral",
        "login-start",
        &attrs!["tenant" => "globex", "plan" => "pro", "seats" => 3, "trial" => false],
    );
    let after_ms = now_ms();
    client.record("behavioral", "app-start", &[]);
    // Let the items wait in the queue: their id and time are written when they leave it, and
    // must still say when they were recorded.
    std::thread::sleep(Duration::from_millis(50));
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let values = mem.values();
    assert_eq!(values.len(), 2);
    let login = &values
        .iter()
        .find(|v| v["event_name"] == "login-start")
        .unwrap();
    assert_eq!(login["event_type"], "behavioral");
    assert_eq!(login["service_name"], "test-svc");
    assert_eq!(login["service_version"], "1.2.3");
    assert_eq!(login["region"], "us", "child beats client");
    assert_eq!(login["tenant"], "globex", "call beats child");
    assert_eq!(login["plan"], "pro");
    assert_eq!(login["seats"], 3);
    assert_eq!(login["trial"], false);
    let id = uuid::Uuid::parse_str(login["event_id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    let t = login["event_time"].as_str().unwrap();
    assert_eq!(t.len(), 24);
    let t_ms = beacon::schema::parse_rfc3339_ms(t).unwrap();
    assert!(
        (before_ms..=after_ms).contains(&t_ms),
        "{t} is the time of the call"
    );
    let (id_secs, id_nanos) = id.get_timestamp().unwrap().to_unix();
    assert_eq!(id_secs * 1000 + u64::from(id_nanos) / 1_000_000, t_ms);
    assert_ne!(values[0]["event_id"], values[1]["event_id"]);
    // The raw text has no duplicate keys.
    let raw = mem
        .items()
        .into_iter()
        .find(|i| i.event_name() == "login-start")
        .unwrap();
    assert_eq!(raw.json().matches("\"region\"").count(), 1);
    assert_eq!(raw.json().matches("\"tenant\"").count(), 1);
    let app = values
        .iter()
        .find(|v| v["event_name"] == "app-start")
        .unwrap();
    assert_eq!(app["region"], "eu");
    // Every item is valid in the shared schema.
    for v in &values {
        beacon::schema::validate_object(v.as_object().unwrap(), 32 * 1024).unwrap();
    }
}

#[test]
fn record_raw_validates_and_names_the_problem() {
    let mem = MemoryTransport::new();
    let client = client_with(&mem, slow_ticks());
    let ok = serde_json::json!({"event_id":"proxy-1","event_time":"2026-11-22T03:19:30+01:00","event_type":"behavioral","event_name":"x","k":1});
    client.record_raw(&ok).unwrap();
    let bad = serde_json::json!({"event_id":"proxy-2","event_time":"nope","event_type":"behavioral","event_name":"x"});
    let err = client.record_raw(&bad).unwrap_err();
    assert_eq!(err.to_string(), "field event_time: not RFC 3339");
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let values = mem.values();
    let raw = values.iter().find(|v| v["event_id"] == "proxy-1").unwrap();
    assert_eq!(raw["event_time"], "2026-11-22T02:19:30.000Z");
    assert!(
        raw.get("service_name").is_none(),
        "raw items are not enriched"
    );
    assert_eq!(client.stats().dropped.invalid, 1);
}

#[test]
fn invalid_records_are_counted_not_sent() {
    let mem = MemoryTransport::new();
    let client = client_with(&mem, slow_ticks());
    client.record("Bad Type", "x", &[]);
    client.record("behavioral", "", &[]);
    client.record("behavioral", "x", &attrs!["event_source" => "reserved"]);
    client.counter("", 1.0, &[]);
    // A span's own fields cannot be set as attributes.
    client.span("s").set_attr("status", "ok");
    client
        .span("s")
        .set_attr("parent_span_id", "00f067aa0ba902b7");
    client
        .span("s")
        .set_attr("status_", "fine")
        .set_attr("span", 1);
    assert_eq!(client.stats().dropped.invalid, 6);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let values = mem.values();
    let reports = of_type(&values, "client_report");
    let spans = of_type(&values, "span");
    assert_eq!(
        values.len(),
        2,
        "the client report and one span: {values:?}"
    );
    assert_eq!(
        (spans[0]["status_"].as_str(), spans[0]["span"].as_i64()),
        (Some("fine"), Some(1))
    );
    assert_eq!(reports[0]["dropped_invalid"], 6);
}

#[test]
fn counters_gauges_and_histograms_are_exact_across_threads() {
    let mem = MemoryTransport::new();
    let client = Client::builder()
        .transport(mem.clone())
        .batch_config(slow_ticks())
        .histogram_bounds("latency", &[10.0, 100.0])
        .build()
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = client.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u64 {
                    c.counter(
                        "hits",
                        1.0,
                        &attrs!["route" => if i % 2 == 0 { "/a" } else { "/b" }],
                    );
                    c.histogram("latency", (i % 200) as f64, &[]);
                }
                c.gauge("temp", t as f64, &attrs!["thread" => t]);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let values = mem.values();
    let metric = |name: &str, pred: &dyn Fn(&Json) -> bool| -> Vec<Json> {
        values
            .iter()
            .filter(|v| v["event_name"] == name && pred(v))
            .cloned()
            .collect()
    };
    let a = metric("hits", &|v| v["route"] == "/a");
    let b = metric("hits", &|v| v["route"] == "/b");
    assert_eq!((a.len(), b.len()), (1, 1), "one item per series");
    assert_eq!(a[0]["metric_type"], "counter");
    assert_eq!(a[0]["value"], 40_000);
    assert_eq!(b[0]["value"], 40_000);
    let h = metric("latency", &|_| true);
    assert_eq!(h.len(), 1);
    let h = &h[0];
    assert_eq!(h["count"], 80_000);
    // Each thread: i % 200 over 10 000 values = 50 rounds of 0..200.
    assert_eq!(h["sum"], 8 * 50 * (0..200).sum::<u64>());
    assert_eq!(h["min"], 0);
    assert_eq!(h["max"], 199);
    assert_eq!(h["bounds"], serde_json::json!([10, 100]));
    // (-inf,10] holds 0..=10 (11 values), (10,100] 11..=100 (90), the rest 99 values.
    assert_eq!(
        h["bucket_counts"],
        serde_json::json!([8 * 50 * 11, 8 * 50 * 90, 8 * 50 * 99])
    );
    let temps = metric("temp", &|_| true);
    assert_eq!(temps.len(), 8);
    assert!(temps
        .iter()
        .all(|g| g["metric_type"] == "gauge" && g["value"] == g["thread"]));
    // Aggregates reset after they are sent.
    mem.clear();
    client.counter("hits", 2.0, &attrs!["route" => "/a"]);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let v = mem.values();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["value"], 2);
}

#[test]
fn aggregates_stay_exact_while_the_ticker_emits_them_during_recording() {
    // The ticker takes the series' lock every 2 ms while four threads add to the same series,
    // until it has emitted the counter at least three times: every addition must land in
    // exactly one interval's item.
    let mem = MemoryTransport::new();
    let client = Client::builder()
        .transport(mem.clone())
        .batch_config(BatchConfig {
            flush_interval: Duration::from_millis(2),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (c, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                // (additions, the histogram values' sum)
                let (mut n, mut sum) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) || n < 1000 {
                    let v = t * 1000 + n % 1000;
                    c.counter("hits", 1.0, &attrs!["route" => "/a", "method" => "GET"]);
                    c.histogram("size", v as f64, &[]);
                    c.usage("relay", "transactions", 2, UsageUnit::Bytes);
                    n += 1;
                    sum += v;
                }
                (n, sum)
            })
        })
        .collect();
    wait_for("three emissions of the counter while recording", || {
        mem.values()
            .iter()
            .filter(|v| v["event_name"] == "hits")
            .count()
            >= 3
    });
    stop.store(true, Ordering::Relaxed);
    let (mut n, mut sum) = (0, 0);
    for t in threads {
        let (tn, tsum) = t.join().unwrap();
        n += tn;
        sum += tsum;
    }
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    client.shutdown_blocking(Duration::from_secs(5)).unwrap();
    let values = mem.values();
    let of =
        |name: &str| -> Vec<&Json> { values.iter().filter(|v| v["event_name"] == name).collect() };
    let total: f64 = of("hits")
        .iter()
        .map(|v| v["value"].as_f64().unwrap())
        .sum();
    assert_eq!(total, n as f64);
    let sizes = of("size");
    let count: u64 = sizes.iter().map(|v| v["count"].as_u64().unwrap()).sum();
    let hist_sum: f64 = sizes.iter().map(|v| v["sum"].as_f64().unwrap()).sum();
    let min = sizes
        .iter()
        .map(|v| v["min"].as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    let max = sizes
        .iter()
        .map(|v| v["max"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!((count, hist_sum), (n, sum as f64));
    // Every thread recorded at least 1 000 values: 0..1000 plus its t·1000.
    assert_eq!((min, max), (0.0, 3999.0));
    let usage: u64 = of_type(&values, "usage")
        .iter()
        .map(|u| u["amount"].as_u64().unwrap())
        .sum();
    assert_eq!(usage, 2 * n);
}

#[test]
fn usage_buckets_close_on_the_timer_with_exact_sums() {
    let mem = MemoryTransport::new();
    let client = Client::builder()
        .transport(mem.clone())
        .usage_granularity(Duration::from_secs(1))
        .batch_config(BatchConfig {
            flush_interval: Duration::from_millis(100),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    c.usage("relay", "transactions", 3, UsageUnit::Bytes);
                    c.usage("relay", "spans", 1, UsageUnit::Milliseconds);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Nobody records any more: the ticker alone must close the buckets.
    wait_for("usage items", || {
        let v = mem.values();
        let sum = |feature: &str| -> u64 {
            of_type(&v, "usage")
                .iter()
                .filter(|u| u["app_feature"] == feature)
                .map(|u| u["amount"].as_u64().unwrap())
                .sum()
        };
        sum("transactions") == 60_000 && sum("spans") == 20_000
    });
    for u in of_type(&mem.values(), "usage") {
        let start = beacon::schema::parse_rfc3339_ms(u["event_time"].as_str().unwrap()).unwrap();
        assert_eq!(start % 1000, 0, "event_time is the bucket start");
        assert_eq!(u["granularity_s"], 1);
        assert!(u["unit"] == "bytes" || u["unit"] == "milliseconds");
    }
}

#[test]
fn usage_sums_survive_a_failed_delivery() {
    let mem = MemoryTransport::new();
    let client = Client::builder()
        .transport(mem.clone())
        .retry_policy(quick_retry())
        .usage_granularity(Duration::from_secs(1))
        .batch_config(slow_ticks())
        .build()
        .unwrap();
    client.usage("db", "reports", 700, UsageUnit::Milliseconds);
    mem.fail_next((0..2).map(|_| SendError::retry("intake down")));
    std::thread::sleep(Duration::from_millis(1100));
    let first = client.flush_blocking(Duration::from_secs(5));
    assert!(first.is_err(), "delivery failed this round: {first:?}");
    client.usage("db", "reports", 300, UsageUnit::Milliseconds);
    client.shutdown_blocking(Duration::from_secs(5)).unwrap();
    let total: u64 = of_type(&mem.values(), "usage")
        .iter()
        .map(|u| u["amount"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1000);
}

#[test]
fn a_requeued_item_keeps_its_id_and_time() {
    // Every attempt's (id, time) pairs; the first round's attempts fail and the batch goes
    // back to the queue.
    type Attempts = Vec<Vec<(String, String)>>;
    let seen: Arc<Mutex<Attempts>> = Arc::default();
    let log = seen.clone();
    let client = Client::builder()
        .retry_policy(quick_retry())
        .batch_config(slow_ticks())
        .transport(move |batch: Batch| {
            let mut log = log.lock().unwrap();
            log.push(
                batch
                    .items()
                    .iter()
                    .map(|i| {
                        let v = i.to_value();
                        (v["event_id"].to_string(), v["event_time"].to_string())
                    })
                    .collect(),
            );
            let fail = log.len() <= 2;
            async move {
                if fail {
                    Err(SendError::retry("intake down"))
                } else {
                    Ok(())
                }
            }
        })
        .build()
        .unwrap();
    for i in 0..5 {
        client.record("behavioral", "click", &attrs!["i" => i]);
    }
    assert!(client.flush_blocking(Duration::from_secs(5)).is_err());
    std::thread::sleep(Duration::from_millis(20));
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "two failed attempts, then a delivery");
    assert_eq!(seen[0].len(), 5);
    assert_eq!(seen[0], seen[2], "the same ids and times on every attempt");
}

#[test]
fn idle_timer_flushes_without_new_records() {
    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            flush_interval: Duration::from_millis(50),
            ..BatchConfig::default()
        },
    );
    client.record("behavioral", "only-one", &[]);
    wait_for("the idle flush", || mem.values().len() == 1);
    assert!(client.stats().last_flush_unix_ms.is_some());
}

#[test]
fn a_full_batch_is_sent_without_waiting_for_the_interval() {
    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            max_batch_size: 10,
            ..slow_ticks()
        },
    );
    for i in 0..25 {
        client.record("behavioral", "e", &attrs!["i" => i]);
    }
    wait_for("two full batches", || mem.batches().len() >= 2);
    assert!(mem.batches().iter().all(|b| b.len() == 10));
    assert_eq!(client.stats().queued_items, 5);
}

#[test]
fn shutdown_and_drop_flush_everything() {
    let mem = MemoryTransport::new();
    let client = client_with(&mem, slow_ticks());
    client.record("behavioral", "a", &[]);
    client.usage("r", "f", 5, UsageUnit::Bytes);
    client.shutdown_blocking(Duration::from_secs(5)).unwrap();
    let v = mem.values();
    assert_eq!(of_type(&v, "behavioral").len(), 1);
    assert_eq!(
        of_type(&v, "usage").len(),
        1,
        "open buckets are emitted at shutdown"
    );
    client.record("behavioral", "after", &[]);
    assert_eq!(
        client.flush_blocking(Duration::from_secs(1)),
        Err(beacon::FlushError::Closed)
    );

    let mem2 = MemoryTransport::new();
    {
        let client = client_with(&mem2, slow_ticks());
        let child = client.with(&attrs!["k" => "v"]);
        child.record("behavioral", "b", &[]);
        drop(client);
        assert!(mem2.values().is_empty(), "a child still holds the pipeline");
        drop(child);
    }
    assert_eq!(mem2.values().len(), 1, "dropping the last handle flushed");
}

#[test]
fn queue_bound_drops_are_counted_exactly_and_reported() {
    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            max_queue_items: 100,
            ..slow_ticks()
        },
    );
    // The intake stays down for the first round.
    mem.fail_next((0..2).map(|_| SendError::retry("503")));
    for i in 0..150 {
        client.record("behavioral", "e", &attrs!["i" => i]);
    }
    assert_eq!(client.stats().dropped.queue_full, 50);
    assert!(client.flush_blocking(Duration::from_secs(5)).is_err());
    assert_eq!(
        client.stats().queued_items,
        100,
        "nothing lost within the bound"
    );
    // Back up: everything queued arrives, and a report says what was dropped.
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let v = mem.values();
    let events = of_type(&v, "behavioral");
    assert_eq!(events.len(), 100);
    let mut seen: Vec<i64> = events.iter().map(|e| e["i"].as_i64().unwrap()).collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..100).collect::<Vec<_>>(),
        "the first 100 kept, in order"
    );
    let reports = of_type(&v, "client_report");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["dropped_queue_full"], 50);
    assert_eq!(reports[0]["service_name"], "test-svc");
    // Reported counts are not reported twice.
    mem.clear();
    client.record("behavioral", "later", &[]);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    assert!(of_type(&mem.values(), "client_report").is_empty());
}

#[test]
fn byte_bound_and_drop_oldest() {
    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            max_queue_items: 10,
            overflow: Overflow::DropOldest,
            max_item_bytes: 1024,
            ..slow_ticks()
        },
    );
    for i in 0..15 {
        client.record("behavioral", "e", &attrs!["i" => i]);
    }
    client.record("behavioral", "huge", &attrs!["blob" => "x".repeat(2000)]);
    let s = client.stats();
    assert_eq!(s.dropped.queue_full, 5);
    assert_eq!(s.dropped.too_large, 1);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let mut kept: Vec<i64> = of_type(&mem.values(), "behavioral")
        .iter()
        .map(|e| e["i"].as_i64().unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, (5..15).collect::<Vec<_>>(), "the oldest were dropped");

    let mem = MemoryTransport::new();
    let one = client_with(&mem, BatchConfig::default());
    one.record("behavioral", "probe", &[]);
    one.flush_blocking(Duration::from_secs(5)).unwrap();
    let size = mem.items()[0].len();
    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            max_memory_bytes: size * 3 + 10,
            ..slow_ticks()
        },
    );
    for _ in 0..5 {
        client.record("behavioral", "probe", &[]);
    }
    assert_eq!(
        client.stats().dropped.queue_full,
        2,
        "bounded by exact encoded bytes"
    );
    assert!(client.stats().queued_bytes <= size * 3 + 10);
}

#[test]
fn drop_oldest_reaches_into_the_recording_threads_lanes() {
    // Sizes of a small item and of the big one's envelope, from a client that delivers.
    let mem = MemoryTransport::new();
    let probe = client_with(&mem, BatchConfig::default());
    probe.record("behavioral", "s0", &[]);
    probe.record("behavioral", "big", &attrs!["blob" => ""]);
    probe.flush_blocking(Duration::from_secs(5)).unwrap();
    let (small, big_base) = (mem.items()[0].len(), mem.items()[1].len());
    let big_blob = "x".repeat(small * 3 / 2 - big_base);

    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            max_memory_bytes: small * 5 + 10,
            overflow: Overflow::DropOldest,
            ..slow_ticks()
        },
    );
    // s0..s4 fill the bound; s5 evicts s0 (gathered from the lane into the queue), s6..s8
    // evict s1..s3 from the queue, which then holds only s4; the rest are in the lane.
    for n in 0..9 {
        client.record("behavioral", &format!("s{n}"), &[]);
    }
    // The big item needs the room of two: s4 from the queue, then s5 from the lane.
    client.record("behavioral", "big", &attrs!["blob" => big_blob.as_str()]);
    assert_eq!(client.stats().dropped.queue_full, 6);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let names: Vec<String> = of_type(&mem.values(), "behavioral")
        .iter()
        .map(|e| e["event_name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        names,
        ["s6", "s7", "s8", "big"],
        "the oldest went, the new one stayed"
    );
}

#[test]
fn a_full_batch_split_between_the_queue_and_the_lanes_wakes_the_flusher() {
    // Only a wake-up can send anything here: the interval is an hour.
    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            max_batch_size: 120,
            ..slow_ticks()
        },
    );
    let delivered = |client: &Client| client.stats().delivered;
    // 150 items: two full lane blocks (128) wake the flusher, which sends 120; the other 30
    // stay queued, short of a batch.
    for _ in 0..150 {
        client.record("behavioral", "e", &[]);
    }
    wait_for("the first batch", || delivered(&client) == 120);
    // Let the flusher stop looking on its own and go back to being woken.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(delivered(&client), 120, "30 items are short of a batch");
    // 106 more: 30 queued + 106 set aside in the lane make a full batch, though the lane's
    // blocks alone (106) do not.
    for _ in 0..106 {
        client.record("behavioral", "e", &[]);
    }
    wait_for("the second batch", || delivered(&client) == 240);
}

#[test]
fn permanent_failures_are_counted_as_delivery_failed() {
    let mem = MemoryTransport::new();
    let client = client_with(&mem, slow_ticks());
    mem.fail_next([SendError::give_up("400 bad request")]);
    for _ in 0..3 {
        client.record("behavioral", "e", &[]);
    }
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(client.stats().dropped.delivery_failed, 3);
    client.record("behavioral", "next", &[]);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let v = mem.values();
    assert_eq!(
        of_type(&v, "client_report")[0]["dropped_delivery_failed"],
        3
    );
}

#[test]
fn sampling_timers_and_incr() {
    let mem = MemoryTransport::new();
    let client = Client::builder()
        .transport(mem.clone())
        .batch_config(slow_ticks())
        .sample_rate_for("behavioral", 0.0)
        .disable_timer("noisy")
        .build()
        .unwrap();
    for _ in 0..10 {
        client.record("behavioral", "dropped-by-sampling", &[]);
    }
    {
        let _t = client.timer("db.query");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(client.timer("noisy"));
    let out = client.time("closure", || 7);
    assert_eq!(out, 7);
    drop(client.timer_sampled("never", 0.0));
    client.incr_sampled("jobs", 5, 1.0);
    client.incr_sampled("never-incr", 5, 0.0);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let v = mem.values();
    assert!(of_type(&v, "behavioral").is_empty());
    let timer = v.iter().find(|x| x["event_name"] == "db.query").unwrap();
    assert_eq!(timer["metric_type"], "timer");
    assert_eq!(timer["rate"], 1);
    assert!(timer["value"].as_f64().unwrap() >= 20.0);
    assert!(v.iter().any(|x| x["event_name"] == "closure"));
    assert!(!v.iter().any(|x| x["event_name"] == "noisy"
        || x["event_name"] == "never"
        || x["event_name"] == "never-incr"));
    let incr = v.iter().find(|x| x["event_name"] == "jobs").unwrap();
    assert_eq!(
        (incr["metric_type"].as_str(), incr["value"].as_i64()),
        (Some("incr"), Some(5))
    );
    assert_eq!(client.stats().dropped.sampled_out, 12);
    assert_eq!(of_type(&v, "client_report")[0]["dropped_sampled_out"], 12);
}

#[test]
fn half_sampled_timer_writes_its_rate() {
    let mem = MemoryTransport::new();
    let client = Client::builder()
        .transport(mem.clone())
        .batch_config(slow_ticks())
        .build()
        .unwrap();
    for _ in 0..400 {
        drop(client.timer_sampled("t", 0.5));
    }
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let timers: Vec<_> = mem
        .values()
        .into_iter()
        .filter(|x| x["event_name"] == "t")
        .collect();
    assert!(timers.iter().all(|t| t["rate"] == 0.5));
    // 400 draws at p = 0.5: outside 120..=280 has probability < 1e-15.
    assert!((120..=280).contains(&timers.len()), "{}", timers.len());
    assert_eq!(
        client.stats().dropped.sampled_out as usize,
        400 - timers.len()
    );
}

#[test]
fn spans_logs_and_traceparent() {
    let mem = MemoryTransport::new();
    let client = client_with(&mem, slow_ticks());
    let remote =
        SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap();
    let outgoing;
    {
        let mut root = client.span_with_parent("GET /pay", &remote);
        root.set_attr("http.method", "GET")
            .set_attr("retries", 2)
            .set_attr("region", "us");
        {
            let mut child = client.span("db.query");
            client.log(Level::Warn, "slow query", &attrs!["table" => "orders"]);
            child.set_status(SpanStatus::Error("timeout".into()));
            outgoing = child.traceparent();
        }
        root.set_status(SpanStatus::Ok);
    }
    client.log(Level::Info, "outside", &[]);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let v = mem.values();
    let spans = of_type(&v, "span");
    assert_eq!(spans.len(), 2);
    let root = spans
        .iter()
        .find(|s| s["event_name"] == "GET /pay")
        .unwrap();
    let child = spans
        .iter()
        .find(|s| s["event_name"] == "db.query")
        .unwrap();
    assert_eq!(root["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(root["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(child["trace_id"], root["trace_id"]);
    assert_eq!(child["parent_span_id"], root["span_id"]);
    assert_eq!(root["status"], "ok");
    assert_eq!(
        (child["status"].as_str(), child["status_message"].as_str()),
        (Some("error"), Some("timeout"))
    );
    assert_eq!(root["http.method"], "GET");
    assert_eq!(root["retries"], 2);
    // A span's own attribute replaces the client's (and is written once); other spans and
    // the client's other attributes are untouched.
    assert_eq!(root["region"], "us");
    assert_eq!(child["region"], "eu");
    assert_eq!(root["service_name"], "test-svc");
    let root_text = mem
        .items()
        .into_iter()
        .find(|i| i.event_type() == "span" && i.event_name() == "GET /pay")
        .unwrap();
    assert_eq!(root_text.json().matches("\"region\":").count(), 1);
    assert!(root["duration_ms"].as_f64().unwrap() >= child["duration_ms"].as_f64().unwrap());
    assert_eq!(root["span_id"].as_str().unwrap().len(), 16);
    let parsed = SpanContext::from_traceparent(&outgoing).unwrap();
    assert_eq!(parsed.span_id_hex(), child["span_id"].as_str().unwrap());
    let logs = of_type(&v, "log");
    let warn = logs.iter().find(|l| l["message"] == "slow query").unwrap();
    assert_eq!(warn["level"], "warn");
    assert_eq!(warn["table"], "orders");
    assert_eq!(
        warn["span_id"], child["span_id"],
        "a log carries the active span"
    );
    assert_eq!(warn["trace_id"], child["trace_id"]);
    let outside = logs.iter().find(|l| l["message"] == "outside").unwrap();
    assert!(outside.get("trace_id").is_none());
    assert!(Client::current_span().is_none());
}

#[test]
fn a_detached_span_outlives_its_client_handle_and_ends_on_another_thread() {
    let mem = MemoryTransport::new();
    let client = client_with(&mem, slow_ticks());
    let root = client.span("GET /pay");
    let (moved, moved_cx) = {
        // Started from a child client whose handle is gone before the span ends.
        let child = client.with(&attrs!["tier" => "gold"]);
        let mut s = child.span("charge");
        s.set_attr("attempt", 1)
            .set_status(SpanStatus::Error("declined".into()));
        let cx = s.context();
        (s.detach(), cx)
    };
    // No longer this thread's active span: the root is again, and a new span here is the
    // root's child.
    assert_eq!(Client::current_span(), Some(root.context()));
    drop(client.span("render"));
    std::thread::spawn(move || {
        let mut s = moved;
        s.set_attr("card", "visa");
        assert_eq!(s.context(), moved_cx);
        s.end();
    })
    .join()
    .unwrap();
    drop(root);
    assert!(Client::current_span().is_none());
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(client.stats().dropped.total(), 0);
    let v = mem.values();
    let spans = of_type(&v, "span");
    assert_eq!(spans.len(), 3, "{spans:?}");
    let by_name = |n: &str| *spans.iter().find(|s| s["event_name"] == n).unwrap();
    let (root, charge, render) = (by_name("GET /pay"), by_name("charge"), by_name("render"));
    assert_eq!(charge["span_id"], moved_cx.span_id_hex().as_str());
    assert_eq!(charge["parent_span_id"], root["span_id"]);
    assert_eq!(render["parent_span_id"], root["span_id"]);
    assert_eq!(charge["tier"], "gold");
    assert_eq!(charge["attempt"], 1);
    assert_eq!(charge["card"], "visa");
    assert_eq!(
        (charge["status"].as_str(), charge["status_message"].as_str()),
        (Some("error"), Some("declined"))
    );
    assert!(render.get("tier").is_none());
}

#[test]
fn rollup_reports_deltas_and_survives_failing_traits() {
    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            flush_interval: Duration::from_millis(50),
            ..BatchConfig::default()
        },
    );
    let queries = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let (q, c) = (queries.clone(), calls.clone());
    queries.fetch_add(5, Ordering::SeqCst); // before start: part of the baseline
    client.start_reporter(
        Reporter::new("environmentd")
            .interval(Duration::from_millis(300))
            .statistic("queries", move || q.load(Ordering::SeqCst))
            .traits(move || {
                // Every second read fails.
                if c.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
                    Err("catalog unavailable".into())
                } else {
                    Ok(vec![("active".into(), Value::from(3))])
                }
            }),
    );
    // Bump the statistic a known amount in each of the first three intervals.
    let mut expected = Vec::new();
    for n in [7u64, 11, 13] {
        queries.fetch_add(n, Ordering::SeqCst);
        expected.push(n);
        let want = expected.len();
        wait_for("a roll-up", || {
            mem.values()
                .iter()
                .filter(|v| v["event_type"] == "rollup" && v["event_name"] == "environmentd")
                .count()
                >= want
        });
    }
    let v = mem.values();
    let rollups: Vec<_> = v
        .iter()
        .filter(|x| x["event_type"] == "rollup" && x["event_name"] == "environmentd")
        .collect();
    let deltas: Vec<u64> = rollups
        .iter()
        .take(3)
        .map(|r| r["queries"].as_u64().unwrap())
        .collect();
    assert_eq!(
        deltas, expected,
        "deltas since the last report, never folded"
    );
    assert_eq!(rollups[0]["active"], 3, "traits merged into the roll-up");
    assert!(
        rollups[1].get("active").is_none(),
        "failed traits read: skipped"
    );
    let traits = v
        .iter()
        .filter(|x| x["event_type"] == "rollup" && x["event_name"] == "traits")
        .count();
    assert!(
        traits >= 2 && traits < rollups.len() + 1,
        "one traits item per successful read"
    );
}

#[test]
fn noop_client_does_nothing() {
    let c = Client::noop();
    c.record("behavioral", "x", &[]);
    c.counter("c", 1.0, &[]);
    drop(c.span("s"));
    assert_eq!(c.stats().accepted, 0);
    assert!(c.flush_blocking(Duration::from_millis(10)).is_err());
}

#[test]
fn config_errors_name_the_problem() {
    let err = Client::builder().build().unwrap_err();
    assert!(err.to_string().contains("no transport"));
    let err = Client::builder()
        .transport(MemoryTransport::new())
        .attr("event_x", 1)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "attribute \"event_x\": the event_ prefix is reserved"
    );
    let err = Client::builder()
        .transport(MemoryTransport::new())
        .sample_rate(1.5)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("between 0 and 1"));
    let err = Client::builder()
        .transport(MemoryTransport::new())
        .batch_config(BatchConfig {
            max_batch_size: 0,
            ..BatchConfig::default()
        })
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_batch_size"));
}

#[test]
fn eight_threads_of_many_events_all_arrive_once() {
    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            flush_interval: Duration::from_millis(100),
            max_queue_items: 1_000_000,
            max_memory_bytes: 1 << 30,
            ..BatchConfig::default()
        },
    );
    const PER: u64 = 100_000;
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let c = client.clone();
            std::thread::spawn(move || {
                for i in 0..PER {
                    c.record("behavioral", "e", &attrs!["n" => t * PER + i]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    client.flush_blocking(Duration::from_secs(60)).unwrap();
    let items = mem.items();
    assert_eq!(client.stats().dropped.total(), 0);
    assert_eq!(items.len() as u64, 8 * PER);
    let mut seen = vec![false; (8 * PER) as usize];
    let mut ids = std::collections::HashSet::new();
    for it in &items {
        let v = it.to_value();
        let n = v["n"].as_u64().unwrap() as usize;
        assert!(!seen[n], "event {n} twice");
        seen[n] = true;
        assert!(ids.insert(it.event_id().to_owned()), "unique event ids");
    }
}

#[test]
fn items_staged_by_short_lived_threads_arrive_once_and_in_each_threads_order() {
    // Natively a recording thread stages items and hands them to the shared queue in groups;
    // threads that exit with a partial group, and several clients recorded into from the
    // same threads, must lose nothing, count everything, and keep each thread's order.
    let mems: Vec<MemoryTransport> = (0..10).map(|_| MemoryTransport::new()).collect();
    let clients: Vec<Client> = mems.iter().map(|m| client_with(m, slow_ticks())).collect();
    const THREADS: u64 = 6;
    const PER: u64 = 150;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let clients = clients.clone();
            std::thread::spawn(move || {
                for i in 0..PER {
                    for c in &clients {
                        c.record("behavioral", "e", &attrs!["t" => t, "i" => i]);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (client, mem) in clients.iter().zip(&mems) {
        let stats = client.stats();
        assert_eq!(stats.accepted, THREADS * PER);
        // Full batches may already be on their way.
        let held = stats.queued_items + stats.inflight_items;
        assert_eq!(held as u64 + stats.delivered, THREADS * PER);
        assert!(stats.queued_items == 0 || stats.queued_bytes > 0);
        client.flush_blocking(Duration::from_secs(10)).unwrap();
        let values: Vec<Json> = mem.items().iter().map(|it| it.to_value()).collect();
        let events = of_type(&values, "behavioral");
        assert_eq!(events.len() as u64, THREADS * PER);
        for t in 0..THREADS {
            let order: Vec<u64> = events
                .iter()
                .filter(|v| v["t"] == t)
                .map(|v| v["i"].as_u64().unwrap())
                .collect();
            assert_eq!(order, (0..PER).collect::<Vec<_>>(), "thread {t}'s order");
        }
        let after = client.stats();
        assert_eq!((after.queued_items, after.queued_bytes), (0, 0));
        assert_eq!(after.delivered, THREADS * PER);
    }
}

#[test]
fn drop_oldest_reaches_items_still_staged_by_the_recording_thread() {
    // 40 items fit; the recording thread stages them (fewer than a hand-over group), so the
    // shared queue is empty when the 41st arrives: the oldest staged item must make room.
    let mem = MemoryTransport::new();
    let client = client_with(
        &mem,
        BatchConfig {
            max_queue_items: 40,
            overflow: Overflow::DropOldest,
            ..slow_ticks()
        },
    );
    for i in 0..50 {
        client.record("behavioral", "e", &attrs!["i" => i]);
    }
    let stats = client.stats();
    assert_eq!(stats.dropped.queue_full, 10);
    assert_eq!(stats.queued_items, 40);
    client.flush_blocking(Duration::from_secs(10)).unwrap();
    let values: Vec<Json> = mem.items().iter().map(|it| it.to_value()).collect();
    let kept: Vec<u64> = of_type(&values, "behavioral")
        .iter()
        .map(|v| v["i"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, (10..50).collect::<Vec<_>>());
}

#[test]
fn span_attributes_replace_any_of_many_client_attributes_once() {
    // Seventy client attributes: a span keeps the replaced ones apart in a bit set for the
    // first 64 and a list for the rest; both kinds must be written once, with the span's value.
    let mem = MemoryTransport::new();
    let mut b = Client::builder()
        .transport(mem.clone())
        .batch_config(slow_ticks());
    for i in 0..70 {
        b = b.attr(format!("a{i}"), i);
    }
    let client = b.build().unwrap();
    {
        let mut span = client.span("many");
        span.set_attr("a3", "mine").set_attr("a66", "mine too");
    }
    client.span("plain").end();
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    let items = mem.items();
    let many = items.iter().find(|i| i.event_name() == "many").unwrap();
    let v = many.to_value();
    assert_eq!(
        (v["a3"].as_str(), v["a66"].as_str()),
        (Some("mine"), Some("mine too"))
    );
    assert_eq!(
        (&v["a2"], &v["a65"], &v["a69"]),
        (&Json::from(2), &Json::from(65), &Json::from(69))
    );
    for key in ["\"a3\":", "\"a66\":", "\"a65\":"] {
        assert_eq!(
            many.json().matches(key).count(),
            1,
            "{key} in {}",
            many.json()
        );
    }
    let plain = items
        .iter()
        .find(|i| i.event_name() == "plain")
        .unwrap()
        .to_value();
    assert_eq!(
        (&plain["a3"], &plain["a66"]),
        (&Json::from(3), &Json::from(66))
    );
}

#[test]
fn span_start_times_follow_the_wall_clock() {
    // A span's start is read from the monotonic clock plus a wall-clock offset each thread
    // refreshes once a second: its event_time must still be the wall-clock time of the
    // start, here and on a fresh thread, also after more than a second.
    let mem = MemoryTransport::new();
    let client = client_with(&mem, slow_ticks());
    let mut windows = Vec::new();
    for pause_ms in [0u64, 1100] {
        std::thread::sleep(Duration::from_millis(pause_ms));
        for fresh_thread in [false, true] {
            let c = client.clone();
            let name = format!("timed-{}", windows.len());
            let record = move || {
                let before = now_ms();
                let s = c.span(&name);
                let after = now_ms();
                drop(s);
                (before, after)
            };
            windows.push(if fresh_thread {
                std::thread::spawn(record).join().unwrap()
            } else {
                record()
            });
        }
    }
    client.flush_blocking(Duration::from_secs(10)).unwrap();
    let values: Vec<Json> = mem.items().iter().map(|it| it.to_value()).collect();
    let spans = of_type(&values, "span");
    assert_eq!(spans.len(), windows.len());
    for (i, (before, after)) in windows.iter().enumerate() {
        let span = spans
            .iter()
            .find(|v| v["event_name"] == format!("timed-{i}").as_str())
            .unwrap();
        let time = span["event_time"].as_str().unwrap();
        let ms = beacon::schema::parse_rfc3339_ms(time).unwrap();
        assert!(
            *before <= ms && ms <= *after,
            "{time} ({ms}) outside {before}..={after}"
        );
    }
}
