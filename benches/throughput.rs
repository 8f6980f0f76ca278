//! Throughput: one thread offers items as fast as it can for 2 s into a pipeline whose
//! exporter or transport does nothing; prints items/s and how many were dropped. Then the
//! same at fixed rates (Beacon's events at 1, 2 and 4 million items a second, its spans at 1
//! and 2, OpenTelemetry's spans at 1), to show at which rate items start to be dropped.
//!
//! `cargo bench --bench throughput`
//!
//! Beacon runs with its default limits (100 000 items, 32 MiB); OpenTelemetry's batch span
//! processor with its defaults (a queue of 2048 spans). Without `--bench` (as under
//! `cargo test --benches`) each run lasts 50 ms, to check that it works.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use beacon::attrs;
use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry::KeyValue;

/// Calls `op` until `run` has passed, at most `per_sec` calls a second (infinity: as fast as
/// it can): after each group of 1024 calls it waits (spinning) until the schedule catches up.
fn offer_at(per_sec: f64, run: Duration, mut op: impl FnMut()) -> Run {
    let cpu = common::CpuTimes::now();
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..1024 {
            op();
        }
        n += 1024;
        let due = Duration::from_secs_f64(n as f64 / per_sec).min(run);
        while start.elapsed() < due {
            std::hint::spin_loop();
        }
        if start.elapsed() >= run {
            return Run {
                calls: n,
                secs: start.elapsed().as_secs_f64(),
                noise: common::steal_note(&cpu),
            };
        }
    }
}

/// What [`offer_at`] did: the calls made, the seconds they took, and the machine's steal
/// time meanwhile.
struct Run {
    calls: u64,
    secs: f64,
    noise: String,
}

/// [`offer_at`] as fast as it can.
fn offer_for(run: Duration, op: impl FnMut()) -> Run {
    offer_at(f64::INFINITY, run, op)
}

/// OpenTelemetry's batch span processor, offered spans by `offer`.
fn otel_spans(what: &str, offer: impl FnOnce(&mut dyn FnMut()) -> Run) {
    let (provider, tracer, exported) = common::otel_tracer();
    let r = offer(&mut || {
        let mut s = tracer.start("checkout");
        s.set_attribute(KeyValue::new("a", "x"));
        s.set_attribute(KeyValue::new("b", 2));
        s.set_attribute(KeyValue::new("c", true));
        s.end();
    });
    rate(what, &r);
    let _ = provider.force_flush();
    println!(
        "  {}",
        common::otel_report(what, r.calls, exported.load(Ordering::Relaxed))
    );
    let _ = provider.shutdown();
}

fn rate(what: &str, r: &Run) {
    println!(
        "{what:<28} {:>10} items in {:.3} s = {:>6.3} M items/s{}",
        r.calls,
        r.secs,
        r.calls as f64 / r.secs / 1e6,
        r.noise
    );
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let run = if bench_mode {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(50)
    };

    let client = common::beacon_client();
    let r = offer_for(run, || {
        client.record(
            "behavioral",
            "login-start",
            &attrs!["a" => "x", "b" => 2, "c" => true],
        )
    });
    rate("beacon events (3 attrs)", &r);
    let stats = common::beacon_settle(&client);
    println!("  {}", common::beacon_report("beacon events", &stats));
    drop(client);

    let client = common::beacon_client();
    let r = offer_for(run, || {
        let mut s = client.span("checkout");
        s.set_attr("a", "x");
        s.set_attr("b", 2);
        s.set_attr("c", true);
        s.end();
    });
    rate("beacon spans (3 attrs)", &r);
    let stats = common::beacon_settle(&client);
    println!("  {}", common::beacon_report("beacon spans", &stats));
    drop(client);

    otel_spans("otel spans (3 attrs, batch)", |op| offer_for(run, op));

    // Fixed rates.
    for millions in [1.0, 2.0, 4.0] {
        let client = common::beacon_client();
        let r = offer_at(millions * 1e6, run, || {
            client.record(
                "behavioral",
                "login-start",
                &attrs!["a" => "x", "b" => 2, "c" => true],
            )
        });
        let what = format!("beacon events at {millions} M/s");
        rate(&what, &r);
        let stats = common::beacon_settle(&client);
        println!("  {}", common::beacon_report(&what, &stats));
    }
    for millions in [1.0, 2.0] {
        let client = common::beacon_client();
        let r = offer_at(millions * 1e6, run, || {
            let mut s = client.span("checkout");
            s.set_attr("a", "x");
            s.set_attr("b", 2);
            s.set_attr("c", true);
            s.end();
        });
        let what = format!("beacon spans at {millions} M/s");
        rate(&what, &r);
        let stats = common::beacon_settle(&client);
        println!("  {}", common::beacon_report(&what, &stats));
    }
    otel_spans("otel spans at 1 M/s", |op| offer_at(1e6, run, op));
}
