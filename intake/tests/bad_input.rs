//! Bad input against the real server: each case gets the right status and a message naming
//! the problem, and nothing else is lost (the valid items sent alongside are all stored).

mod common;

use std::io::Write;

use common::*;
use reqwest::blocking::Response;
use serde_json::{json, Value};

const TOKEN: &str = "t0ken-for-tests";
const KEY: &str = "pk_public";
const ORIGIN: &str = "https://app.example.com";

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--token",
        TOKEN,
        "--basic-auth",
        "ingest:s3cret",
        "--write-key",
        KEY,
        "--allow-origin",
        ORIGIN,
        "--max-body-bytes",
        "65536",
        "--max-decompressed-bytes",
        "262144",
        "--max-items",
        "100",
    ];
    args.extend_from_slice(extra);
    Server::start(dir, &args)
}

fn error_of(r: Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().expect("JSON error body");
    (status, body["error"].as_str().unwrap_or("").to_owned())
}

fn post(s: &Server, body: impl Into<reqwest::blocking::Body>) -> reqwest::blocking::RequestBuilder {
    http()
        .post(s.url())
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn every_bad_input_is_named_and_nothing_else_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let mut stored: Vec<String> = Vec::new();

    // Malformed JSON: 400, and the parser's position.
    let (st, msg) = error_of(post(&s, "[{\"event_id\": \"x\",").send().unwrap());
    assert_eq!(st, 400);
    assert!(
        msg.contains("malformed JSON") && msg.contains("line 1"),
        "{msg}"
    );
    let (st, msg) = error_of(post(&s, "").send().unwrap());
    assert_eq!((st, msg.contains("empty body")), (400, true), "{msg}");

    // A mixed batch: the valid items are stored, the invalid ones reported by index.
    let batch = json!([
        ev("m-1", "behavioral", "ok"),
        {"event_id": "m-2", "event_time": "yesterday", "event_type": "behavioral", "event_name": "x"},
        ev("m-3", "log", "no-level"),
        ev("m-4", "behavioral", "ok"),
        "not an object",
    ]);
    let r = post(&s, batch.to_string()).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let a: Value = r.json().unwrap();
    assert_eq!(a["accepted"], 2);
    assert_eq!(a["duplicates"], 0);
    assert_eq!(
        a["rejected"],
        json!([
            {"index": 1, "error": "field event_time: not RFC 3339"},
            {"index": 2, "error": "field level: missing"},
            {"index": 4, "error": "item is not a JSON object"},
        ])
    );
    stored.extend(["m-1".into(), "m-4".into()]);

    // The same batch again (a retry): stored once, counted as duplicates.
    let a: Value = post(&s, batch.to_string()).send().unwrap().json().unwrap();
    assert_eq!(
        (a["accepted"].as_i64(), a["duplicates"].as_i64()),
        (Some(0), Some(2))
    );

    // Every item invalid: 400 with the per-item answer.
    let r = post(&s, json!([{"event_id": "z"}]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let a: Value = r.json().unwrap();
    assert_eq!(a["rejected"][0]["error"], "field event_time: missing");
    assert!(a["error"]
        .as_str()
        .unwrap()
        .contains("every item was rejected"));

    // NDJSON with one broken line: that line is rejected by index, the others stored.
    let nd = format!(
        "{}\n{{broken\n{}\n",
        ev("n-1", "behavioral", "a"),
        ev("n-2", "behavioral", "b")
    );
    let r = http()
        .post(s.url())
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(nd)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let a: Value = r.json().unwrap();
    assert_eq!(a["accepted"], 2);
    assert_eq!(a["rejected"][0]["index"], 1);
    assert!(a["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .starts_with("line 2: malformed JSON"));
    stored.extend(["n-1".into(), "n-2".into()]);

    // Wrong content type: 415.
    let (st, msg) = error_of(
        http()
            .post(s.url())
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(json!([ev("c-1", "behavioral", "x")]).to_string())
            .send()
            .unwrap(),
    );
    assert_eq!(st, 415);
    assert!(
        msg.contains("application/x-www-form-urlencoded") && msg.contains("application/json"),
        "{msg}"
    );
    let (st, msg) = error_of(
        post(&s, "[]")
            .header("content-encoding", "br")
            .send()
            .unwrap(),
    );
    assert_eq!(st, 415);
    assert!(msg.contains("\"br\""), "{msg}");

    // Oversized body: 413 (checked against Content-Length, before reading).
    let big = format!(
        "[{}]",
        vec![ev("b", "behavioral", "x").to_string(); 1000].join(",")
    );
    assert!(big.len() > 65536);
    let (st, msg) = error_of(post(&s, big.clone()).send().unwrap());
    assert_eq!(st, 413);
    assert!(msg.contains("over the limit of 65536 bytes"), "{msg}");

    // Too many items: 413.
    let many: Vec<Value> = (0..101)
        .map(|i| ev(&format!("many-{i}"), "behavioral", "x"))
        .collect();
    let (st, msg) = error_of(post(&s, Value::Array(many).to_string()).send().unwrap());
    assert_eq!(st, 413);
    assert!(
        msg.contains("too many items: 101") && msg.contains("limit is 100"),
        "{msg}"
    );

    // An item over 32 KiB is rejected by index; the one beside it is stored.
    let mut huge = ev("huge", "behavioral", "x");
    huge["blob"] = json!("x".repeat(40_000));
    let r = post(&s, json!([huge, ev("h-ok", "behavioral", "x")]).to_string())
        .send()
        .unwrap();
    let a: Value = r.json().unwrap();
    assert_eq!(a["accepted"], 1);
    assert!(a["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("over the limit of 32768 bytes"));
    stored.push("h-ok".into());

    // gzip: a real compressed batch is accepted…
    let z = gzip(json!([ev("g-1", "behavioral", "x")]).to_string().as_bytes());
    let r = post(&s, z)
        .header("content-encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    stored.push("g-1".into());
    // …a gzip bomb (64 MiB of spaces in a few KiB) is cut off at the limit with 413…
    let bomb = gzip(&vec![b' '; 64 << 20]);
    assert!(bomb.len() < 65536, "{}", bomb.len());
    let (st, msg) = error_of(
        post(&s, bomb)
            .header("content-encoding", "gzip")
            .send()
            .unwrap(),
    );
    assert_eq!(st, 413);
    assert!(
        msg.contains("decompressed body is over the limit of 262144 bytes"),
        "{msg}"
    );
    // …and a body that is not gzip at all is a 400.
    let (st, msg) = error_of(
        post(&s, "[]")
            .header("content-encoding", "gzip")
            .send()
            .unwrap(),
    );
    assert_eq!(st, 400);
    assert!(msg.contains("not valid gzip"), "{msg}");

    // Credentials: missing, wrong token, wrong password, wrong key: 401 naming which.
    let body = json!([ev("a-1", "behavioral", "x")]).to_string();
    let cases: Vec<(reqwest::blocking::RequestBuilder, &str)> = vec![
        (http().post(s.url()), "missing credentials"),
        (
            http().post(s.url()).bearer_auth("nope"),
            "wrong bearer token",
        ),
        (
            http().post(s.url()).basic_auth("ingest", Some("nope")),
            "wrong basic-auth user or password",
        ),
        (
            http().post(format!("{}?key=pk_nope", s.url())),
            "wrong write key",
        ),
        (
            http().post(s.url()).header("authorization", "Digest abc"),
            "Bearer or Basic",
        ),
    ];
    for (req, want) in cases {
        let r = req
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .unwrap();
        assert!(r.headers().contains_key("www-authenticate"));
        let (st, msg) = error_of(r);
        assert_eq!(st, 401, "{want}");
        assert!(msg.contains(want), "{msg} should say {want}");
    }
    // …and the right ones are accepted: basic auth, and a write key as browsers send it.
    let r = http()
        .post(s.url())
        .basic_auth("ingest", Some("s3cret"))
        .header("content-type", "application/json")
        .body(json!([ev("a-basic", "behavioral", "x")]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    stored.push("a-basic".into());

    // CORS: a preflight from an allowed origin, then a sendBeacon-style text/plain POST.
    let r = http()
        .request(reqwest::Method::OPTIONS, s.url())
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], ORIGIN);
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let r = http()
        .post(format!("{}?key={KEY}", s.url()))
        .header("origin", ORIGIN)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(format!(
            "{}\n{}",
            ev("beacon-1", "behavioral", "x"),
            ev("beacon-2", "behavioral", "y")
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], ORIGIN);
    stored.extend(["beacon-1".into(), "beacon-2".into()]);
    // A disallowed origin: 403, for the preflight and for the POST, with no CORS headers.
    let r = http()
        .request(reqwest::Method::OPTIONS, s.url())
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let (st, msg) = error_of(r);
    assert_eq!(st, 403);
    assert!(
        msg.contains("\"https://evil.example\" is not allowed"),
        "{msg}"
    );
    let (st, msg) = error_of(
        http()
            .post(format!("{}?key={KEY}", s.url()))
            .header("origin", "https://evil.example")
            .header("content-type", "text/plain")
            .body(json!(ev("evil", "behavioral", "x")).to_string())
            .send()
            .unwrap(),
    );
    assert_eq!(st, 403);
    assert!(msg.contains("not allowed by CORS"), "{msg}");

    // /metrics needs a secret (not the public key); it counts what happened above.
    let r = http()
        .get(format!("{}/metrics?key={KEY}", s.base()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let m = http()
        .get(format!("{}/metrics", s.base()))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    for line in [
        format!("beacon_intake_items_accepted_total {}", stored.len()),
        "beacon_intake_items_duplicate_total 2".into(),
        "beacon_intake_items_rejected_total{reason=\"bad_time\"} 2".into(),
        "beacon_intake_items_rejected_total{reason=\"decompressed_too_large\"} 1".into(),
        "beacon_intake_items_rejected_total{reason=\"origin_not_allowed\"} 1".into(),
        "beacon_intake_requests_total{code=\"413\"} 3".into(),
    ] {
        assert!(
            m.contains(&format!("{line}\n")),
            "metrics lack {line:?}:\n{m}"
        );
    }
    assert!(m.contains("beacon_intake_request_duration_seconds_count "));
    let r = http().get(format!("{}/healthz", s.base())).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Nothing else lost, nothing extra stored.
    let db = s.db();
    let (status, err) = s.terminate();
    assert!(status.success(), "{err}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM events"),
        stored.len() as i64
    );
    for id in &stored {
        assert_eq!(
            count(
                &db,
                &format!("SELECT count(*) FROM events WHERE event_id = '{id}'")
            ),
            1,
            "{id}"
        );
    }
}

#[test]
fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--rate-limit", "50"]);
    // 60 items: allowed (a burst may overdraw the bucket)…
    let batch: Vec<Value> = (0..60)
        .map(|i| ev(&format!("r-{i}"), "behavioral", "x"))
        .collect();
    let r = post(&s, Value::Array(batch).to_string()).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // …then the same token is refused until the bucket refills.
    let r = post(&s, json!([ev("r-late", "behavioral", "x")]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after >= 1);
    let (_, msg) = error_of(r);
    assert!(msg.contains("rate limit exceeded for token #1"), "{msg}");
    // Another key has its own bucket.
    let r = http()
        .post(format!("{}?key={KEY}", s.url()))
        .header("content-type", "application/json")
        .body(json!([ev("r-other", "behavioral", "x")]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let db = s.db();
    drop(s);
    assert_eq!(count(&db, "SELECT count(*) FROM events"), 61);
}

#[test]
fn an_open_intake_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without credentials"),
        "{err}"
    );
}

#[test]
fn a_busy_store_answers_503_with_retry_after_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // At most 4 items may wait for the writer; with --sync full every commit waits for the disk,
    // so eight senders keep it busy and some requests must be shed.
    let s = start(dir.path(), &["--max-pending-items", "4", "--sync", "full"]);
    let url = s.url();
    let senders: Vec<_> = (0..8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let client = http();
                let (mut stored, mut shed) = (0u64, Vec::new());
                for i in 0..60 {
                    let batch = json!([
                        ev(&format!("busy-{t}-{i}-a"), "behavioral", "x"),
                        ev(&format!("busy-{t}-{i}-b"), "behavioral", "x"),
                    ]);
                    // A shed batch is sent again, as the SDK would: bounded, so the test ends.
                    for _attempt in 0..200 {
                        let r = client
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .header("content-type", "application/json")
                            .body(batch.to_string())
                            .send()
                            .unwrap();
                        if r.status().as_u16() == 503 {
                            let after = r
                                .headers()
                                .get("retry-after")
                                .map(|v| v.to_str().unwrap().to_owned());
                            let (_, msg) = error_of(r);
                            shed.push((after, msg));
                            continue;
                        }
                        assert_eq!(r.status().as_u16(), 200);
                        stored += 2;
                        break;
                    }
                }
                (stored, shed)
            })
        })
        .collect();
    let mut stored = 0;
    let mut shed = Vec::new();
    for t in senders {
        let (n, s) = t.join().unwrap();
        stored += n;
        shed.extend(s);
    }
    assert_eq!(stored, 8 * 60 * 2, "every batch was eventually accepted");
    assert!(
        !shed.is_empty(),
        "eight concurrent senders against a bound of 4 items were never shed"
    );
    for (after, msg) in &shed {
        assert_eq!(after.as_deref(), Some("1"));
        assert!(msg.starts_with("store busy:"), "{msg}");
    }
    let db = s.db();
    drop(s);
    assert_eq!(count(&db, "SELECT count(*) FROM events"), 8 * 60 * 2);
}
