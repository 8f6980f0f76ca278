//! The intake's own counters, rendered in the Prometheus text format on `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the request latency histogram, in seconds.
pub const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters shared by every request.
#[derive(Debug, Default)]
pub struct Metrics {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    forwarded: AtomicU64,
    bytes_received: AtomicU64,
    bytes_decompressed: AtomicU64,
    sink_errors: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    requests: Mutex<BTreeMap<u16, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// Items stored (or queued for forwarding).
    pub fn add_accepted(&self, n: u64) {
        self.accepted.fetch_add(n, Ordering::Relaxed);
    }

    /// Items already stored before (same `event_id`).
    pub fn add_duplicates(&self, n: u64) {
        self.duplicates.fetch_add(n, Ordering::Relaxed);
    }

    /// Items queued for the upstream intake.
    pub fn add_forwarded(&self, n: u64) {
        self.forwarded.fetch_add(n, Ordering::Relaxed);
    }

    /// Items (or whole requests) rejected, by reason.
    pub fn add_rejected(&self, reason: &'static str, n: u64) {
        *lock(&self.rejected).entry(reason).or_default() += n;
    }

    /// Body bytes as received, and after decompression.
    pub fn add_bytes(&self, received: u64, decompressed: u64) {
        self.bytes_received.fetch_add(received, Ordering::Relaxed);
        self.bytes_decompressed
            .fetch_add(decompressed, Ordering::Relaxed);
    }

    /// A failed write to the store or the forward queue.
    pub fn add_sink_error(&self) {
        self.sink_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// One finished request on `POST /v1/events`.
    pub fn observe_request(&self, status: u16, took: Duration) {
        *lock(&self.requests).entry(status).or_default() += 1;
        let s = took.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut o = String::with_capacity(2048);
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut o,
            "beacon_intake_items_accepted_total",
            "Items stored (or queued for the upstream intake in proxy mode).",
            get(&self.accepted),
        );
        counter(
            &mut o,
            "beacon_intake_items_duplicate_total",
            "Items whose event_id was already stored.",
            get(&self.duplicates),
        );
        counter(
            &mut o,
            "beacon_intake_items_forwarded_total",
            "Items queued for the upstream intake (proxy mode).",
            get(&self.forwarded),
        );
        let _ = writeln!(
            o,
            "# HELP beacon_intake_items_rejected_total Items or whole requests rejected, by reason.\n# TYPE beacon_intake_items_rejected_total counter"
        );
        for (reason, n) in lock(&self.rejected).iter() {
            let _ = writeln!(
                o,
                "beacon_intake_items_rejected_total{{reason=\"{reason}\"}} {n}"
            );
        }
        counter(
            &mut o,
            "beacon_intake_received_bytes_total",
            "Request body bytes as received (compressed).",
            get(&self.bytes_received),
        );
        counter(
            &mut o,
            "beacon_intake_decompressed_bytes_total",
            "Request body bytes after decompression.",
            get(&self.bytes_decompressed),
        );
        counter(
            &mut o,
            "beacon_intake_sink_errors_total",
            "Failed writes to the store or the forward queue.",
            get(&self.sink_errors),
        );
        let _ = writeln!(
            o,
            "# HELP beacon_intake_requests_total Requests on POST /v1/events by status.\n# TYPE beacon_intake_requests_total counter"
        );
        for (code, n) in lock(&self.requests).iter() {
            let _ = writeln!(o, "beacon_intake_requests_total{{code=\"{code}\"}} {n}");
        }
        let name = "beacon_intake_request_duration_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Latency of POST /v1/events, until the answer (after commit).\n# TYPE {name} histogram"
        );
        let mut cum = 0;
        for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
            cum += get(&self.latency_buckets[i]);
            let _ = writeln!(o, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        cum += get(&self.latency_buckets[LATENCY_BOUNDS.len()]);
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(
            o,
            "{name}_sum {}\n{name}_count {}",
            get(&self.latency_sum_us) as f64 / 1e6,
            get(&self.latency_count)
        );
        for (name, help, v) in extra {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.add_accepted(3);
        m.add_rejected("bad_time", 2);
        m.observe_request(200, Duration::from_millis(3));
        m.observe_request(200, Duration::from_secs(20));
        let t = m.render(&[("beacon_intake_store_pending_items", "x", 0.0)]);
        assert!(t.contains("beacon_intake_items_accepted_total 3\n"), "{t}");
        assert!(t.contains("beacon_intake_items_rejected_total{reason=\"bad_time\"} 2\n"));
        assert!(t.contains("beacon_intake_requests_total{code=\"200\"} 2\n"));
        assert!(t.contains("beacon_intake_request_duration_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(t.contains("beacon_intake_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(t.contains("beacon_intake_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(t.contains("beacon_intake_request_duration_seconds_count 2\n"));
    }
}
