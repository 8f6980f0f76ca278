//! Load generator for `beacon serve`: posts batches of 500 events over several connections on
//! loopback for a fixed time, then reports events/s stored and request latency percentiles,
//! and checks the store holds exactly what was acknowledged.
//!
//! ```text
//! cargo build --release -p beacon-intake --bin beacon --example loadgen
//! target/release/examples/loadgen --connections 4 --seconds 10
//! ```
//!
//! By default it starts `beacon serve` itself (the `beacon` binary next to the `examples/`
//! directory) on a free port with a fresh data dir; `--url` and `--db` aim it at a running
//! server instead. Extra arguments after `--` go to `beacon serve`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Opts {
    connections: usize,
    seconds: u64,
    batch: usize,
    gzip: bool,
    url: Option<String>,
    db: Option<PathBuf>,
    serve_args: Vec<String>,
}

fn parse() -> Opts {
    let mut o = Opts {
        connections: 4,
        seconds: 10,
        batch: 500,
        gzip: false,
        url: None,
        db: None,
        serve_args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--connections" => o.connections = val().parse().expect("--connections N"),
            "--seconds" => o.seconds = val().parse().expect("--seconds N"),
            "--batch" => o.batch = val().parse().expect("--batch N"),
            "--gzip" => o.gzip = true,
            "--url" => o.url = Some(val()),
            "--db" => o.db = Some(PathBuf::from(val())),
            "--" => o.serve_args.extend(args.by_ref()),
            other => panic!("unknown argument {other}; see the doc comment of loadgen.rs"),
        }
    }
    o
}

fn body(conn: usize, seq: u64, n: usize, gzip: bool) -> Vec<u8> {
    use std::fmt::Write;
    let mut s = String::with_capacity(n * 200);
    s.push('[');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"event_id":"lg-{conn}-{seq}-{i}","event_time":"2026-11-22T02:19:30.123Z","event_type":"behavioral","event_name":"checkout","service_name":"shop","user_id":"u-{i}","plan":"pro","amount_cents":{i}}}"#
        );
    }
    s.push(']');
    if gzip {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(s.as_bytes()).unwrap();
        e.finish().unwrap()
    } else {
        s.into_bytes()
    }
}

fn spawn_server(extra: &[String]) -> (Child, String, PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("beacon");
    let dir = std::env::temp_dir().join(format!("beacon-loadgen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it with --bin beacon)",
                bin.display()
            )
        });
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    // Keep reading so the server never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("server address")
        .to_owned();
    (
        child,
        format!("http://{addr}/v1/events"),
        dir.join("beacon.db"),
    )
}

fn main() {
    let o = parse();
    let (mut child, url, db): (Option<Child>, String, Option<PathBuf>) = match &o.url {
        Some(u) => (None, u.clone(), o.db.clone()),
        None => {
            let (c, u, d) = spawn_server(&o.serve_args);
            (Some(c), u, Some(d))
        }
    };
    let stop_at = Instant::now() + Duration::from_secs(o.seconds);
    let start = Instant::now();
    let handles: Vec<_> = (0..o.connections)
        .map(|conn| {
            let url = url.clone();
            let (batch, gzip) = (o.batch, o.gzip);
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let mut lat = Vec::new();
                let (mut acked, mut shed) = (0u64, 0u64);
                let mut seq = 0u64;
                // Bounded by time and by count.
                while Instant::now() < stop_at && seq < 1_000_000 {
                    let b = body(conn, seq, batch, gzip);
                    let mut req = client.post(&url).header("content-type", "application/json");
                    if gzip {
                        req = req.header("content-encoding", "gzip");
                    }
                    let t = Instant::now();
                    let r = req.body(b).send().expect("request failed");
                    let status = r.status().as_u16();
                    let text = r.text().unwrap_or_default();
                    lat.push(t.elapsed());
                    if status == 200 {
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                        acked += v["accepted"].as_u64().unwrap_or(0);
                        seq += 1;
                    } else if status == 503 || status == 429 {
                        shed += 1;
                    } else {
                        panic!("unexpected answer {status}: {text}");
                    }
                }
                (lat, acked, shed)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let (mut acked, mut shed) = (0u64, 0u64);
    for h in handles {
        let (l, a, s) = h.join().unwrap();
        lat.extend(l);
        acked += a;
        shed += s;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{} connections, batches of {}{}, {:.1} s: {} events acknowledged in {} requests ({} shed with 429/503)",
        o.connections,
        o.batch,
        if o.gzip { " (gzip)" } else { "" },
        elapsed,
        acked,
        lat.len(),
        shed
    );
    println!(
        "throughput: {:.0} events/s stored; request latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        acked as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if let Some(c) = child.as_mut() {
        terminate(c);
    }
    if let Some(db) = db {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE event_id LIKE 'lg-%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        println!(
            "store check: {n} rows in {} (acknowledged {acked})",
            db.display()
        );
        assert_eq!(
            n as u64, acked,
            "the store does not hold what was acknowledged"
        );
        if child.is_some() {
            let _ = std::fs::remove_dir_all(db.parent().unwrap());
        }
    }
}

/// Stops the spawned server with SIGTERM (graceful: the store is checkpointed) and waits.
fn terminate(c: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .status();
    let _ = c.wait();
}
