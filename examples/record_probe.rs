//! Instructions per recording call, for callgrind (the README's Performance section).
//!
//! Each operation runs in its own loop function, so callgrind can count just that loop on the
//! calling thread. Count twice with different loop lengths; the difference divided by the
//! difference in calls is the cost of one call, without start-up and shutdown:
//!
//! ```sh
//! cargo build --release --example record_probe
//! for n in 1000 101000; do
//!   valgrind --tool=callgrind --toggle-collect='record_probe::loop_event' \
//!     target/release/examples/record_probe event $n 2>&1 | grep refs
//! done   # (second − first) / 100000 = instructions per event
//! ```
//!
//! Operations: `event`, `counter`, `usage`, `span`, `log` (the same calls as
//! `benches/record.rs`), and `span12`, a span with twelve attributes, one set twice. Without valgrind it prints the wall-clock time per call, which on a
//! two-core machine depends heavily on what the background thread is doing at the same time.

use std::process::ExitCode;
use std::time::Instant;

use beacon::transport::NoopTransport;
use beacon::{attrs, Client, Level, UsageUnit};

#[inline(never)]
fn loop_event(c: &Client, n: u64) {
    for i in 0..n {
        c.record(
            "behavioral",
            "login-start",
            &attrs!["plan" => "pro", "seats" => i, "trial" => false],
        );
    }
}

#[inline(never)]
fn loop_counter(c: &Client, n: u64) {
    for _ in 0..n {
        c.counter(
            "requests",
            1.0,
            &attrs!["route" => "/pay", "method" => "GET"],
        );
    }
}

#[inline(never)]
fn loop_usage(c: &Client, n: u64) {
    for _ in 0..n {
        c.usage("relay", "transactions", 100, UsageUnit::Bytes);
    }
}

#[inline(never)]
fn loop_span(c: &Client, n: u64) {
    for i in 0..n {
        let mut s = c.span("GET /pay");
        s.set_attr("http.method", "GET");
        s.set_attr("http.status", 200);
        s.set_attr("retry", i);
        s.end();
    }
}

/// A span with twelve attributes, like an HTTP server's: some set twice, and enough keys that
/// the filter of keys already set (see `Span::set_attr`) sometimes matches a new one.
#[inline(never)]
fn loop_span12(c: &Client, n: u64) {
    for i in 0..n {
        let mut s = c.span("GET /orders/{id}");
        s.set_attr("http.request.method", "GET")
            .set_attr("http.route", "/orders/{id}")
            .set_attr("url.path", "/orders/1234")
            .set_attr("url.scheme", "https")
            .set_attr("server.address", "api.example.com")
            .set_attr("server.port", 443)
            .set_attr("client.address", "203.0.113.7")
            .set_attr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
            .set_attr("network.protocol.version", "1.1")
            .set_attr("http.response.status_code", 200)
            .set_attr("http.response.body.size", i)
            .set_attr("enduser.id", "u-42")
            .set_attr("http.response.status_code", 404);
        s.end();
    }
}

#[inline(never)]
fn loop_log(c: &Client, n: u64) {
    for i in 0..n {
        c.log(
            Level::Info,
            "payment accepted",
            &attrs!["amount" => 42, "currency" => "EUR", "n" => i],
        );
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_default();
    let run: fn(&Client, u64) = match op.as_str() {
        "event" => loop_event,
        "counter" => loop_counter,
        "usage" => loop_usage,
        "span" => loop_span,
        "span12" => loop_span12,
        "log" => loop_log,
        _ => {
            eprintln!("usage: record_probe <event|counter|usage|span|span12|log> [calls]");
            return ExitCode::FAILURE;
        }
    };
    let calls = match args.next().map(|n| n.parse::<u64>()) {
        None => 200_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("record_probe: the number of calls must be a positive integer");
            return ExitCode::FAILURE;
        }
    };
    // Like the benchmarks' client (`benches/common`): a service name, the default limits.
    let client = match Client::builder()
        .service_name("probe")
        .transport(NoopTransport)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("record_probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Measure the steady state: natively the clocks switch to the calibrated time-stamp
    // counter half a second after the client is built (see `rt::mono_us`), and the first
    // recording calls start the background thread.
    client.record("behavioral", "warm-up", &[]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    client.record("behavioral", "warm-up", &[]);
    // In 50 rounds: the fastest round shows the cost when nothing else on the host got in the
    // way, the whole run what it cost on average.
    let rounds = 50;
    let per_round = (calls / rounds).max(1);
    let mut best = f64::MAX;
    let start = Instant::now();
    let cpu_start = thread_cpu_ns();
    for _ in 0..rounds {
        let round = Instant::now();
        run(&client, per_round);
        best = best.min(round.elapsed().as_nanos() as f64 / per_round as f64);
    }
    let done = per_round * rounds;
    let per_call = start.elapsed().as_nanos() as f64 / done as f64;
    let cpu_per_call = (thread_cpu_ns() - cpu_start) as f64 / done as f64;
    let stats = client.stats();
    eprintln!(
        "{op}: {done} calls, {per_call:.0} ns per call, {cpu_per_call:.0} ns CPU per call, \
         {best:.0} ns per call in the fastest of {rounds} rounds, {} dropped",
        stats.dropped.total()
    );
    ExitCode::SUCCESS
}

/// CPU time of this thread in nanoseconds (time the host took from the virtual machine is
/// not counted where the kernel accounts steal time).
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
