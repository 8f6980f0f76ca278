//! A command-line tool instrumented with Beacon.
//!
//! ```sh
//! cargo run --example cli                      # items printed as JSON lines
//! BEACON_URL=http://127.0.0.1:7070/v1/events cargo run --example cli   # sent to `beacon serve`
//! ```

use std::time::Duration;

use beacon::transport::{HttpTransport, StdoutTransport};
use beacon::{attrs, Client, Level, UsageUnit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = Client::builder()
        .service_name("beacon-example-cli")
        .service_version(env!("CARGO_PKG_VERSION"))
        .install_id("example-install");
    let client = match std::env::var("BEACON_URL") {
        Ok(url) => builder.transport(HttpTransport::new(url)?).build()?,
        Err(_) => builder.transport(StdoutTransport).build()?,
    };

    client.record(
        "behavioral",
        "app-start",
        &attrs!["args" => std::env::args().count() as u64],
    );
    let files = client.time("scan", || (0..1_000).filter(|n| n % 7 == 0).count());
    client.counter("files_scanned", files as f64, &attrs!["kind" => "source"]);
    client.usage("disk", "scan", 4_096 * files as u64, UsageUnit::Bytes);
    client.log(
        Level::Info,
        "scan finished",
        &attrs!["files" => files as u64],
    );

    // A CLI exits right away: shut down explicitly so everything (open usage buckets too) is sent.
    client.shutdown_blocking(Duration::from_secs(5))?;
    eprintln!("stats: {:?}", client.stats());
    Ok(())
}
