//! Stdout, file, filter, route, closures and several transports at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beacon::transport::{
    FileTransport, FilterTransport, MemoryTransport, RouteTransport, StdoutTransport,
};
use beacon::{attrs, Batch, BatchConfig, Client, Level, SendError};

fn quiet() -> BatchConfig {
    BatchConfig {
        flush_interval: Duration::from_secs(3600),
        ..BatchConfig::default()
    }
}

#[test]
fn file_transport_appends_json_lines() {
    let dir = std::env::temp_dir().join(format!("beacon-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.jsonl");
    let _ = std::fs::remove_file(&path);
    for round in 0..2 {
        let client = Client::builder()
            .transport(FileTransport::open(&path).unwrap())
            .batch_config(quiet())
            .build()
            .unwrap();
        for i in 0..3 {
            client.record("behavioral", "saved", &attrs!["round" => round, "i" => i]);
        }
        client.shutdown_blocking(Duration::from_secs(5)).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "appended, not truncated");
    assert_eq!(lines.iter().filter(|v| v["round"] == 0).count(), 3);
    assert!(text.ends_with('\n'));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_transport_names_the_path_it_cannot_open() {
    let err = FileTransport::open("/nonexistent-dir/beacon/x.jsonl").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn stdout_transport_writes_one_json_line_per_item() {
    // Runs this test binary again as a child whose standard output we can read.
    if std::env::var_os("BEACON_STDOUT_CHILD").is_some() {
        let client = Client::builder()
            .transport(StdoutTransport)
            .batch_config(quiet())
            .build()
            .unwrap();
        client.record("behavioral", "to-stdout", &attrs!["n" => 1]);
        client.log(Level::Info, "hello", &[]);
        client.shutdown_blocking(Duration::from_secs(5)).unwrap();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stdout_transport_writes_one_json_line_per_item",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BEACON_STDOUT_CHILD", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let items: Vec<serde_json::Value> = text
        .lines()
        // The test harness may print its own text before the first line.
        .filter_map(|l| l.find("{\"event_id\"").map(|at| &l[at..]))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 2, "{text}");
    assert!(items
        .iter()
        .any(|v| v["event_name"] == "to-stdout" && v["n"] == 1));
    assert!(items
        .iter()
        .any(|v| v["event_type"] == "log" && v["message"] == "hello"));
}

#[test]
fn filter_and_route_by_event_type() {
    let logs = MemoryTransport::new();
    let metrics = MemoryTransport::new();
    let rest = MemoryTransport::new();
    let router = RouteTransport::new()
        .route("log", logs.clone())
        .route("metric", metrics.clone())
        .default_route(FilterTransport::new(rest.clone(), |item| {
            item.event_name() != "secret"
        }));
    let client = Client::builder()
        .transport(router)
        .batch_config(quiet())
        .build()
        .unwrap();
    client.log(Level::Error, "boom", &[]);
    client.counter("c", 2.0, &[]);
    client.record_metric("m", 1.5, &[]);
    client.record("behavioral", "public", &[]);
    client.record("behavioral", "secret", &[]);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(logs.values().len(), 1);
    assert!(logs.values().iter().all(|v| v["event_type"] == "log"));
    assert_eq!(metrics.values().len(), 2);
    let rest = rest.values();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["event_name"], "public");
}

#[test]
fn a_closure_is_a_transport_and_its_retry_is_honoured() {
    let calls = Arc::new(AtomicUsize::new(0));
    let got = Arc::new(AtomicUsize::new(0));
    let (c2, g2) = (calls.clone(), got.clone());
    let client = Client::builder()
        .transport(move |batch: Batch| {
            let (calls, got) = (c2.clone(), g2.clone());
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(SendError::Retry {
                        after: Some(Duration::from_millis(20)),
                        reason: "first call fails".into(),
                    });
                }
                got.fetch_add(batch.len(), Ordering::SeqCst);
                Ok(())
            }
        })
        .batch_config(quiet())
        .build()
        .unwrap();
    for _ in 0..5 {
        client.record("behavioral", "x", &[]);
    }
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(got.load(Ordering::SeqCst), 5);
}

#[test]
fn every_transport_gets_every_batch() {
    let a = MemoryTransport::new();
    let b = MemoryTransport::new();
    let client = Client::builder()
        .transport(a.clone())
        .transport(b.clone())
        .batch_config(quiet())
        .build()
        .unwrap();
    for i in 0..10 {
        client.record("behavioral", "fan", &attrs!["i" => i]);
    }
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(a.values().len(), 10);
    assert_eq!(b.values().len(), 10);
    // One refuses for good: the other still has it, and the failure is counted.
    b.fail_next([SendError::give_up("no")]);
    client.record("behavioral", "half", &[]);
    client.flush_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(a.values().len(), 11);
    assert_eq!(b.values().len(), 10);
    assert_eq!(client.stats().batches_failed, 1);
}
