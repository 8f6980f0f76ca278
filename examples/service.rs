//! A long-running service instrumented with Beacon: spans per request, a latency histogram,
//! logs inside spans, and an hourly-style roll-up (here every 2 s).
//!
//! ```sh
//! cargo run --release -p beacon-intake --bin beacon -- serve &    # the intake
//! cargo run --example service                                     # runs for ~5 s
//! cargo run -p beacon-intake --bin beacon -- query "select event_type, count(*) from events group by 1"
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beacon::transport::HttpTransport;
use beacon::{attrs, BatchConfig, Client, Level, Reporter, SpanStatus, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("BEACON_URL").unwrap_or_else(|_| "http://127.0.0.1:7070/v1/events".into());
    let client = Client::builder()
        .service_name("beacon-example-service")
        .batch_config(BatchConfig {
            flush_interval: Duration::from_secs(1),
            ..BatchConfig::default()
        })
        .transport(HttpTransport::new(url)?)
        .build()?;

    let served = Arc::new(AtomicU64::new(0));
    let s = served.clone();
    client.start_reporter(
        Reporter::new("service")
            .interval(Duration::from_secs(2))
            .statistic("requests_served", move || s.load(Ordering::Relaxed))
            .traits(|| Ok(vec![("workers".into(), Value::from(4))])),
    );

    for i in 0..50u64 {
        let mut span = client.span("GET /orders");
        span.set_attr("order", i);
        let started = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(100));
        if i % 10 == 9 {
            client.log(Level::Warn, "slow order lookup", &attrs!["order" => i]);
            span.set_status(SpanStatus::Error("timeout".into()));
        } else {
            span.set_status(SpanStatus::Ok);
        }
        client.histogram(
            "latency_ms",
            started.elapsed().as_secs_f64() * 1000.0,
            &attrs!["route" => "/orders"],
        );
        served.fetch_add(1, Ordering::Relaxed);
    }
    client.shutdown_blocking(Duration::from_secs(5))?;
    eprintln!("stats: {:?}", client.stats());
    Ok(())
}
