//! Beacon on Kafka: events routed to topics by type, and sentry-compatible usage accounting.
//!
//! Start a broker and its topics (the test broker, `tansu`):
//!
//! ```text
//! tansu broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
//!     --storage-engine memory://tansu/ &
//! for t in beacon-events beacon-logs shared-resources-usage; do
//!     tansu topic create $t --partitions 3 --broker tcp://127.0.0.1:9092
//! done
//! cargo run --example kafka --features kafka -- 127.0.0.1:9092
//! ```

use std::time::Duration;

use beacon::transport::{KafkaConfig, KafkaTransport};
use beacon::usage_accountant::UsageAccountant;
use beacon::{attrs, Client, Level, UsageUnit};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());

    // librdkafka properties pass through unchanged; Beacon adds idempotence, lz4 and a small
    // linger unless they are set here.
    let config = KafkaConfig::new(&brokers)
        .set("linger.ms", "10")
        .default_topic("beacon-events")
        .topic_for("log", "beacon-logs")
        .startup_timeout(Duration::from_secs(5));

    // Fails within the start-up timeout when no broker answers (or a topic is missing).
    let kafka = KafkaTransport::connect(config.clone())?;
    let client = Client::builder()
        .service_name("kafka-example")
        .transport(kafka)
        .build()?;

    for i in 0..10 {
        client.record(
            "behavioral",
            "login-start",
            &attrs!["attempt" => i as i64, "plan" => "pro"],
        );
    }
    client.log(Level::Warn, "disk almost full", &attrs!["free_mb" => 512]);
    client.record_metric("queue_depth", 42.0, &attrs!["queue" => "emails"]);
    // Acknowledged only once the broker has every message.
    client.flush_blocking(Duration::from_secs(30))?;
    println!(
        "events: {} delivered to {brokers}",
        client.stats().delivered
    );

    // sentry_usage_accountant's shape: buckets of 60 s, closed by a timer, written to
    // `shared-resources-usage` as sentry's message, keyed per bucket.
    let accountant = UsageAccountant::new_with_kafka(config, None, None)?;
    accountant.record("relay", "transactions", 100, UsageUnit::Bytes);
    accountant.record("relay", "spans", 2_048, UsageUnit::Bytes);
    accountant.record("relay", "spans", 15, UsageUnit::Milliseconds);
    accountant.flush()?;
    println!("usage: flushed, {} pending", accountant.pending());

    client.shutdown_blocking(Duration::from_secs(10))?;
    Ok(())
}
