//! Set-up shared by the benchmarks: a Beacon client on a no-op transport and OpenTelemetry
//! providers whose exporters only count what reaches them (so drops are observable).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beacon::transport::NoopTransport;
use beacon::{BatchConfig, Client, Stats};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

/// A Beacon client on the no-op transport with the default batching limits
/// (100 000 items, 32 MiB, batches of 500 sent as soon as they are full).
pub fn beacon_client() -> Client {
    Client::builder()
        .service_name("bench")
        .transport(NoopTransport)
        .batch_config(BatchConfig::default())
        .build()
        .expect("a valid client")
}

/// Flushes and returns the client's counters.
pub fn beacon_settle(client: &Client) -> Stats {
    if let Err(e) = client.flush_blocking(Duration::from_secs(30)) {
        println!("beacon flush: {e}");
    }
    client.stats()
}

/// One line about what a Beacon client accepted, delivered and dropped.
pub fn beacon_report(what: &str, s: &Stats) -> String {
    let d = &s.dropped;
    format!(
        "{what}: accepted {}, delivered {}, queued {}, dropped {} \
         (queue_full {}, too_large {}, invalid {}, sampled_out {}, delivery_failed {})",
        s.accepted,
        s.delivered,
        s.queued_items + s.inflight_items,
        d.total(),
        d.queue_full,
        d.too_large,
        d.invalid,
        d.sampled_out,
        d.delivery_failed
    )
}

/// A span exporter that counts the spans it receives and discards them.
#[derive(Debug, Clone, Default)]
pub struct CountingSpanExporter(pub Arc<AtomicU64>);

impl SpanExporter for CountingSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// An OpenTelemetry tracer with the thread-based batch span processor (its default
/// configuration: queue of 2048, batches of 512, 5 s delay) and a counting no-op exporter.
pub fn otel_tracer() -> (SdkTracerProvider, SdkTracer, Arc<AtomicU64>) {
    let exported = Arc::new(AtomicU64::new(0));
    let processor = BatchSpanProcessor::builder(CountingSpanExporter(exported.clone())).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("bench");
    (provider, tracer, exported)
}

/// One line about how many of the spans offered reached the exporter.
pub fn otel_report(what: &str, offered: u64, exported: u64) -> String {
    format!(
        "{what}: offered {offered}, exported {exported}, dropped {}",
        offered.saturating_sub(exported)
    )
}

/// A reading of this machine's CPU time counters (`/proc/stat`), to tell how much of a
/// benchmark's time the hypervisor gave to other machines (steal time): figures measured
/// under heavy steal are slower than the code.
pub struct CpuTimes {
    steal: u64,
    total: u64,
}

impl CpuTimes {
    /// The counters now; `None` where `/proc/stat` cannot be read.
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|t| t.parse().ok())
            .collect::<Option<_>>()?;
        Some(CpuTimes {
            steal: *ticks.get(7)?,
            // Guest and guest_nice time are already counted in user and nice time.
            total: ticks.iter().take(8).sum(),
        })
    }

    /// The share of CPU time stolen since this reading, in percent.
    pub fn steal_percent_since(&self) -> Option<f64> {
        let now = CpuTimes::now()?;
        let total = now.total.checked_sub(self.total).filter(|t| *t > 0)?;
        Some(100.0 * now.steal.saturating_sub(self.steal) as f64 / total as f64)
    }
}

/// ", steal N % of CPU time" for a line about a run that started at `since`, or nothing
/// where `/proc/stat` cannot be read.
pub fn steal_note(since: &Option<CpuTimes>) -> String {
    since
        .as_ref()
        .and_then(CpuTimes::steal_percent_since)
        .map(|p| format!(", steal {p:.0} % of CPU time"))
        .unwrap_or_default()
}
