//! What one recording call costs on the calling thread: Beacon against OpenTelemetry's SDK,
//! in the same run. Every exporter or transport is a no-op; the background tasks keep
//! draining while the benchmark runs, and the drops of both sides are printed at the end so a
//! figure that only measured dropping can be told apart.
//!
//! `cargo bench --bench record`

mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon::{attrs, Level, UsageUnit};
use criterion::Criterion;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{BatchLogProcessor, LogBatch, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

/// A log exporter that counts the records it receives and discards them.
#[derive(Debug, Clone, Default)]
struct CountingLogExporter(Arc<AtomicU64>);

impl LogExporter for CountingLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.0
            .fetch_add(batch.iter().count() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A metric exporter that discards what it receives.
#[derive(Debug, Clone, Default)]
struct NoopMetricExporter;

impl PushMetricExporter for NoopMetricExporter {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// Runs `op` once per iteration and adds the iterations to `offered`.
fn bench(c: &mut Criterion, name: &str, offered: &Cell<u64>, mut op: impl FnMut()) {
    let (cpu, began) = (common::CpuTimes::now(), Instant::now());
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            offered.set(offered.get() + iters);
            let start = Instant::now();
            for _ in 0..iters {
                op();
            }
            start.elapsed()
        })
    });
    // (A benchmark left out by a filter takes no time and gets no line.)
    let note = common::steal_note(&cpu);
    if began.elapsed() > Duration::from_secs(1) && !note.is_empty() {
        println!("{name}: machine noise{note}");
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    let mut report = Vec::new();

    // Beacon.
    let client = common::beacon_client();
    let unused = Cell::new(0);
    let items_offered = Cell::new(0);
    bench(&mut c, "beacon/event_3_attrs", &items_offered, || {
        client.record(
            black_box("behavioral"),
            black_box("login-start"),
            &attrs!["a" => "x", "b" => 2, "c" => true],
        )
    });
    let drops_after = |what: &str, report: &mut Vec<String>| {
        let d = client.stats().dropped.total();
        report.push(format!(
            "beacon: {d} items dropped in all by the end of {what}"
        ));
    };
    drops_after("beacon/event_3_attrs", &mut report);
    bench(&mut c, "beacon/counter_2_labels", &unused, || {
        client.counter(
            black_box("requests"),
            1.0,
            &attrs!["route" => "/a", "method" => "GET"],
        )
    });
    bench(&mut c, "beacon/usage", &unused, || {
        client.usage(
            black_box("relay"),
            black_box("transactions"),
            100,
            UsageUnit::Bytes,
        )
    });
    bench(&mut c, "beacon/span_3_attrs", &items_offered, || {
        let mut s = client.span(black_box("checkout"));
        s.set_attr("a", "x");
        s.set_attr("b", 2);
        s.set_attr("c", true);
        s.end();
    });
    drops_after("beacon/span_3_attrs", &mut report);
    bench(&mut c, "beacon/log_3_fields", &items_offered, || {
        client.log(
            Level::Info,
            black_box("user logged in"),
            &attrs!["a" => "x", "b" => 2, "c" => true],
        )
    });
    report.push(common::beacon_report(
        &format!(
            "beacon: {} events, spans and logs offered (plus the aggregated metric and usage items)",
            items_offered.get()
        ),
        &common::beacon_settle(&client),
    ));
    drop(client);

    // OpenTelemetry: batch span processor, batch log processor, a meter with a periodic reader
    // (default interval, 60 s) and a no-op exporter.
    let (tracer_provider, tracer, spans_exported) = common::otel_tracer();
    let logs_exported = Arc::new(AtomicU64::new(0));
    let logger_provider = SdkLoggerProvider::builder()
        .with_log_processor(
            BatchLogProcessor::builder(CountingLogExporter(logs_exported.clone())).build(),
        )
        .build();
    let logger = logger_provider.logger("bench");
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(NoopMetricExporter).build())
        .build();
    let counter = meter_provider
        .meter("bench")
        .f64_counter("requests")
        .build();

    let logs_offered = Cell::new(0);
    bench(&mut c, "otel/event_3_attrs", &logs_offered, || {
        let mut r = logger.create_log_record();
        r.set_event_name("login-start");
        r.set_severity_number(Severity::Info);
        r.add_attribute("a", "x");
        r.add_attribute("b", 2);
        r.add_attribute("c", true);
        logger.emit(r);
    });
    bench(&mut c, "otel/counter_2_labels", &unused, || {
        counter.add(
            1.0,
            &[KeyValue::new("route", "/a"), KeyValue::new("method", "GET")],
        )
    });
    let spans_offered = Cell::new(0);
    bench(&mut c, "otel/span_3_attrs", &spans_offered, || {
        let mut s = tracer.start(black_box("checkout"));
        s.set_attribute(KeyValue::new("a", "x"));
        s.set_attribute(KeyValue::new("b", 2));
        s.set_attribute(KeyValue::new("c", true));
        s.end();
    });
    bench(&mut c, "otel/log_3_fields", &logs_offered, || {
        let mut r = logger.create_log_record();
        r.set_severity_number(Severity::Info);
        r.set_severity_text("INFO");
        r.set_body(black_box("user logged in").into());
        r.add_attribute("a", "x");
        r.add_attribute("b", 2);
        r.add_attribute("c", true);
        logger.emit(r);
    });
    let _ = tracer_provider.force_flush();
    let _ = logger_provider.force_flush();
    report.push(common::otel_report(
        "otel spans",
        spans_offered.get(),
        spans_exported.load(Ordering::Relaxed),
    ));
    report.push(common::otel_report(
        "otel logs (events and logs)",
        logs_offered.get(),
        logs_exported.load(Ordering::Relaxed),
    ));
    let _ = tracer_provider.shutdown();
    let _ = logger_provider.shutdown();
    let _ = meter_provider.shutdown();

    c.final_summary();
    println!();
    for line in report {
        println!("{line}");
    }
}
