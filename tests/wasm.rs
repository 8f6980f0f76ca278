//! Core behaviour that must hold on both targets. The same bodies run natively
//! (`cargo test --test wasm`, on tokio) and on wasm32 with wasm-bindgen-test, in Node and in
//! headless Chromium (`scripts/ci/20-browser.sh`), where the core runs on the JS event loop
//! (`spawn_local`, `setTimeout`) instead of a background thread.
//!
//! The transport is a closure (the flush callback) that keeps every batch: a real transport
//! (fetch) is covered by the JS and end-to-end browser tests.

use std::sync::{Arc, Mutex};

use beacon::rt::Duration;
use beacon::{
    attrs, schema, Batch, BatchConfig, Client, Level, RetryPolicy, SendError, SpanContext,
    UsageUnit,
};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;

#[derive(Clone, Default)]
struct Sink {
    batches: Arc<Mutex<Vec<Batch>>>,
    /// Calls to fail (with a retryable error) before accepting.
    fail_first: Arc<Mutex<u32>>,
    calls: Arc<Mutex<u32>>,
}

impl Sink {
    fn client(&self, cfg: BatchConfig, retry: RetryPolicy) -> Client {
        let sink = self.clone();
        Client::builder()
            .service_name("wasm-test")
            .batch_config(cfg)
            .retry_policy(retry)
            .transport(move |batch: Batch| {
                let sink = sink.clone();
                async move {
                    *sink.calls.lock().unwrap() += 1;
                    let mut fail = sink.fail_first.lock().unwrap();
                    if *fail > 0 {
                        *fail -= 1;
                        return Err(SendError::retry("intake answered 500"));
                    }
                    sink.batches.lock().unwrap().push(batch);
                    Ok(())
                }
            })
            .build()
            .unwrap()
    }

    fn items(&self) -> Vec<serde_json::Value> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b.items().iter().map(|i| i.to_value()).collect::<Vec<_>>())
            .collect()
    }
}

fn one_attempt() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

fn quiet() -> BatchConfig {
    // The interval never fires during a test: only explicit flushes send.
    BatchConfig {
        flush_interval: Duration::from_secs(3600),
        ..BatchConfig::default()
    }
}

fn names_of(items: &[serde_json::Value], ty: &str) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .filter(|i| i["event_type"] == ty)
        .map(|i| i["event_name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
async fn every_item_type_arrives_once_and_validates() {
    let sink = Sink::default();
    let client = sink.client(quiet(), RetryPolicy::default());
    client.record("behavioral", "login-start", &attrs!["plan" => "pro"]);
    client.record_metric("fps", 59.5, &[]);
    client.counter("clicks", 2.0, &attrs!["button" => "buy"]);
    client.counter("clicks", 3.0, &attrs!["button" => "buy"]);
    client.gauge("heap_mb", 12.0, &[]);
    client.histogram("latency_ms", 8.0, &[]);
    client.histogram("latency_ms", 80.0, &[]);
    client.incr("retries", 1);
    client.log(Level::Warn, "slow frame", &attrs!["frame" => 7]);
    let parent = client.span("checkout");
    client.span("load-cart").end();
    parent.end();
    client.usage("cpu", "render", 120, UsageUnit::Milliseconds);
    client.flush().await.unwrap();
    client.shutdown(Duration::from_secs(5)).await.unwrap();

    let items = sink.items();
    for it in &items {
        schema::validate_str(&it.to_string(), schema::DEFAULT_MAX_ITEM_BYTES)
            .unwrap_or_else(|e| panic!("{it}: {e}"));
        assert_eq!(it["service_name"], "wasm-test");
    }
    let mut ids: Vec<&str> = items
        .iter()
        .map(|i| i["event_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), items.len(), "every item once");
    assert_eq!(names_of(&items, "behavioral"), ["login-start"]);
    assert_eq!(
        names_of(&items, "metric"),
        ["clicks", "fps", "heap_mb", "latency_ms", "retries"]
    );
    assert_eq!(names_of(&items, "log"), ["warn"]);
    assert_eq!(names_of(&items, "span"), ["checkout", "load-cart"]);
    assert_eq!(names_of(&items, "usage"), ["usage"]);
    let clicks = items.iter().find(|i| i["event_name"] == "clicks").unwrap();
    assert_eq!(clicks["value"], 5);
    assert_eq!(clicks["metric_type"], "counter");
    let spans: Vec<_> = items.iter().filter(|i| i["event_type"] == "span").collect();
    let (outer, inner) = if spans[0]["event_name"] == "checkout" {
        (spans[0], spans[1])
    } else {
        (spans[1], spans[0])
    };
    assert_eq!(inner["parent_span_id"], outer["span_id"]);
    assert_eq!(inner["trace_id"], outer["trace_id"]);
    let usage = items.iter().find(|i| i["event_type"] == "usage").unwrap();
    assert_eq!(usage["amount"], 120);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
async fn a_failed_round_keeps_the_batch_queued_and_the_next_flush_delivers_it_once() {
    let sink = Sink::default();
    *sink.fail_first.lock().unwrap() = 2;
    let client = sink.client(quiet(), one_attempt());
    for i in 0..5 {
        client.record("behavioral", "step", &attrs!["i" => i]);
    }
    assert!(client.flush().await.is_err(), "first round fails");
    assert_eq!(client.stats().queued_items, 5);
    assert!(client.flush().await.is_err(), "second round fails");
    client.flush().await.unwrap();
    let got: Vec<i64> = sink
        .items()
        .iter()
        .filter(|i| i["event_type"] == "behavioral")
        .map(|i| i["i"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [0, 1, 2, 3, 4], "in order, once");
    assert_eq!(*sink.calls.lock().unwrap(), 3);
    let stats = client.stats();
    assert_eq!(stats.delivered, 5);
    assert_eq!(stats.queued_items, 0);
    assert_eq!(stats.batches_failed, 2);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
async fn page_exit_takes_by_bytes_and_requeues_in_order_on_failure() {
    let sink = Sink::default();
    let client = sink.client(quiet(), RetryPolicy::default());
    for i in 0..10 {
        client.record("behavioral", "step", &attrs!["i" => i]);
    }
    let queued = client.stats().queued_bytes;
    let per_item = queued / 10;
    // Room for three items and their separators, not four.
    let taken = client.take_for_exit(per_item * 3 + 10).expect("items fit");
    assert_eq!(taken.batch().len(), 3);
    assert_eq!(client.stats().inflight_items, 3);
    assert_eq!(client.stats().queued_items, 7);
    client.settle_exit(taken, false);
    assert_eq!(client.stats().queued_items, 10, "back in the queue");
    assert!(
        client.take_for_exit(per_item / 2).is_none(),
        "one item does not fit"
    );

    let taken = client.take_for_exit(per_item * 4 + 10).unwrap();
    let first: Vec<i64> = taken
        .batch()
        .items()
        .iter()
        .map(|i| i.to_value()["i"].as_i64().unwrap())
        .collect();
    assert_eq!(first, [0, 1, 2, 3], "oldest first, in order");
    client.settle_exit(taken, true);
    assert_eq!(client.stats().delivered, 4);
    client.flush().await.unwrap();
    let rest: Vec<i64> = sink
        .items()
        .iter()
        .map(|i| i["i"].as_i64().unwrap())
        .collect();
    assert_eq!(
        rest,
        [4, 5, 6, 7, 8, 9],
        "the rest goes with the next flush, once"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
async fn page_exit_emits_open_aggregates() {
    let sink = Sink::default();
    let client = sink.client(quiet(), RetryPolicy::default());
    client.counter("clicks", 1.0, &[]);
    client.usage("cpu", "render", 5, UsageUnit::Milliseconds);
    assert_eq!(client.stats().queued_items, 0, "aggregated, not queued yet");
    client.collect_now(true);
    let taken = client.take_for_exit(64 * 1024).unwrap();
    let mut types: Vec<String> = taken
        .batch()
        .items()
        .iter()
        .map(|i| i.event_type().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["metric", "usage"]);
    client.settle_exit(taken, true);
    assert_eq!(client.stats().delivered, 2);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
async fn dropping_the_last_handle_delivers_queued_items_and_open_aggregates() {
    // Natively the drop waits for the final flush; in the browser it cannot wait, and the
    // flush finishes on the event loop afterwards.
    let sink = Sink::default();
    let client = sink.client(quiet(), RetryPolicy::default());
    client.record("behavioral", "click", &[]);
    client.counter("clicks", 2.0, &[]);
    client.usage("cpu", "render", 5, UsageUnit::Milliseconds);
    drop(client);
    let mut types = Vec::new();
    for _ in 0..300 {
        types = sink
            .items()
            .iter()
            .map(|i| i["event_type"].as_str().unwrap_or_default().to_owned())
            .collect();
        types.sort();
        if types.len() >= 3 {
            break;
        }
        beacon::rt::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(types, ["behavioral", "metric", "usage"]);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
async fn a_span_continues_a_remote_trace() {
    let sink = Sink::default();
    let client = sink.client(quiet(), RetryPolicy::default());
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let parent = SpanContext::from_traceparent(tp).unwrap();
    let span = client.span_with_parent("GET /pay", &parent);
    let mine = span.traceparent();
    assert!(mine.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(mine.ends_with("-01"));
    span.end();
    client.flush().await.unwrap();
    let items = sink.items();
    assert_eq!(items[0]["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(items[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_shared_fixtures_validate_the_same_way() {
    let valid: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/valid.json")).unwrap();
    for item in valid.as_array().unwrap() {
        schema::validate_str(&item.to_string(), schema::DEFAULT_MAX_ITEM_BYTES)
            .unwrap_or_else(|e| panic!("{item}: {e}"));
    }
    let invalid: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/invalid.json")).unwrap();
    for case in invalid.as_array().unwrap() {
        let text = case["item"].to_string();
        let err = schema::validate_str(&text, schema::DEFAULT_MAX_ITEM_BYTES)
            .expect_err(case["why"].as_str().unwrap());
        assert_eq!(err.to_string(), case["error"].as_str().unwrap());
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
async fn a_full_queue_drops_and_reports_the_drops() {
    let sink = Sink::default();
    let client = sink.client(
        BatchConfig {
            max_queue_items: 3,
            ..quiet()
        },
        RetryPolicy::default(),
    );
    for _ in 0..5 {
        client.record("behavioral", "x", &[]);
    }
    assert_eq!(client.stats().dropped.queue_full, 2);
    client.flush().await.unwrap();
    let items = sink.items();
    let report = items
        .iter()
        .find(|i| i["event_type"] == "client_report")
        .expect("a client_report");
    assert_eq!(report["dropped_queue_full"], 2);
    assert_eq!(names_of(&items, "behavioral").len(), 3);
}
