//! SDK → Kafka throughput on loopback: records N events through a `Client` with the Kafka
//! transport and times until the broker has acknowledged all of them (events/s and bytes/s of
//! item JSON), for a few producer / batching settings, several runs each. A run counts only
//! if the client reports every event delivered (acknowledged by the broker) and none dropped.
//!
//! ```text
//! cargo run --release --example kafka_throughput --features kafka,testing
//! cargo run --release --example kafka_throughput --features kafka,testing -- \
//!     --events 300000 --runs 3 --brokers 127.0.0.1:9092
//! ```
//!
//! Without `--brokers` it starts its own `tansu` on a free port of 127.0.0.1 (restarted empty
//! before every run, so memory use stays flat).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon::rt::BoxFuture;
use beacon::tansu::TansuBroker;
use beacon::transport::{KafkaConfig, KafkaTransport};
use beacon::{attrs, Batch, BatchConfig, Client, SendError, Transport};

const TOPIC: &str = "beacon-bench";

/// One configuration to measure.
#[derive(Clone, Copy)]
struct Setting {
    name: &'static str,
    linger_ms: u32,
    batch_size: usize,
    concurrency: usize,
}

const SETTINGS: [Setting; 4] = [
    Setting {
        name: "defaults (linger 5 ms, batches of 500, 2 in flight)",
        linger_ms: 5,
        batch_size: 500,
        concurrency: 2,
    },
    Setting {
        name: "linger 100 ms, batches of 500, 2 in flight",
        linger_ms: 100,
        batch_size: 500,
        concurrency: 2,
    },
    Setting {
        name: "linger 5 ms, batches of 10 000, 4 in flight",
        linger_ms: 5,
        batch_size: 10_000,
        concurrency: 4,
    },
    Setting {
        name: "linger 100 ms, batches of 10 000, 8 in flight",
        linger_ms: 100,
        batch_size: 10_000,
        concurrency: 8,
    },
];

/// Counts the JSON bytes the broker acknowledged.
struct Counting {
    inner: KafkaTransport,
    bytes: Arc<AtomicU64>,
}

impl Transport for Counting {
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            let n = batch.bytes() as u64;
            self.inner.send(batch).await?;
            self.bytes.fetch_add(n, Ordering::Relaxed);
            Ok(())
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.inner.shutdown()
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn run(brokers: &str, s: Setting, events: usize) -> Result<(f64, f64), String> {
    let config = KafkaConfig::new(brokers)
        .set("linger.ms", s.linger_ms.to_string())
        .default_topic(TOPIC);
    let kafka = KafkaTransport::connect(config).map_err(|e| e.to_string())?;
    let bytes = Arc::new(AtomicU64::new(0));
    let client = Client::builder()
        .service_name("bench")
        .transport(Counting {
            inner: kafka,
            bytes: bytes.clone(),
        })
        .batch_config(BatchConfig {
            max_queue_items: events + 10_000,
            max_memory_bytes: 1 << 30,
            max_batch_size: s.batch_size,
            max_batch_bytes: 16 << 20,
            max_concurrent_sends: s.concurrency,
            flush_interval: Duration::from_millis(100),
            ..BatchConfig::default()
        })
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    for i in 0..events {
        client.record(
            "behavioral",
            "checkout",
            &attrs!["i" => i as i64, "route" => "/pay", "plan" => "pro", "user_id" => "u-42"],
        );
    }
    client
        .flush_blocking(Duration::from_secs(300))
        .map_err(|e| format!("flush: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    let stats = client.stats();
    if stats.delivered != events as u64 || stats.dropped.total() != 0 {
        return Err(format!(
            "delivered {} of {events}, dropped {:?}",
            stats.delivered, stats.dropped
        ));
    }
    client
        .shutdown_blocking(Duration::from_secs(10))
        .map_err(|e| format!("shutdown: {e}"))?;
    Ok((
        events as f64 / secs,
        bytes.load(Ordering::Relaxed) as f64 / secs,
    ))
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = arg("--events").map_or(Ok(300_000), |v| v.parse())?;
    let runs: usize = arg("--runs").map_or(Ok(3), |v| v.parse())?;
    let external = arg("--brokers");
    let mut own = match &external {
        Some(_) => None,
        None => Some(TansuBroker::start()?),
    };
    let brokers = external
        .clone()
        .unwrap_or_else(|| own.as_ref().map(TansuBroker::bootstrap_servers).unwrap());
    if let Some(b) = own.as_mut() {
        b.create_topic(TOPIC, 3)?;
    }
    println!("{events} events per run, {runs} runs per setting, broker {brokers}");
    for s in SETTINGS {
        let mut eps = Vec::new();
        let mut bps = Vec::new();
        for r in 0..runs {
            if let Some(b) = own.as_mut() {
                b.restart()?; // empty broker: flat memory, and the count below is exact
            }
            let (e, b) = run(&brokers, s, events)?;
            println!(
                "  {}: run {}: {:>9.0} events/s  {:>6.1} MB/s",
                s.name,
                r + 1,
                e,
                b / 1e6
            );
            eps.push(e);
            bps.push(b);
        }
        let (em, es) = mean_sd(&eps);
        let (bm, bs) = mean_sd(&bps);
        let (lo, hi) = eps
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
        println!(
            "{}: {em:.0} ± {es:.0} events/s (min {lo:.0}, max {hi:.0}), {:.1} ± {:.1} MB/s",
            s.name,
            bm / 1e6,
            bs / 1e6
        );
    }
    Ok(())
}
