//! `beacon send`, `beacon tail` and `beacon query` run as a user would, against a real
//! server and store, checking what they print and their exit status.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn beacon(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn send_tail_and_query_as_a_user_would() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--token", "cli-token"]);
    let url = s.url();
    let data_dir = dir.path().to_str().unwrap();

    // One event from flags.
    let out = beacon(
        &[
            "send",
            "--url",
            &url,
            "--token",
            "cli-token",
            "--type",
            "behavioral",
            "--name",
            "deploy-start",
            "--service",
            "ci",
            "env=prod",
            "attempt=2",
            "dry_run=false",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("sent 1 event to {url}"));

    // NDJSON from standard input (event_id and event_time filled in).
    let nd = "{\"event_type\":\"log\",\"event_name\":\"build\",\"level\":\"info\",\"message\":\"step 1\"}\n\
              {\"event_type\":\"log\",\"event_name\":\"build\",\"level\":\"warn\",\"message\":\"slow step\"}\n\
              {\"event_id\":\"fixed-id\",\"event_time\":\"2026-11-22T02:19:30Z\",\"event_type\":\"behavioral\",\"event_name\":\"deploy-end\"}\n";
    let out = beacon(&["send", "--url", &url, "--token", "cli-token"], Some(nd));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("sent 3 events to {url}"));

    // Rejections and failures: non-zero exit and a message naming the problem.
    let out = beacon(
        &["send", "--url", &url, "--token", "wrong", "--name", "x"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("the intake refused the events")
            && err.contains("401")
            && err.contains("wrong bearer token"),
        "{err}"
    );
    let out = beacon(
        &[
            "send",
            "--url",
            &url,
            "--token",
            "cli-token",
            "--type",
            "Not A Type",
            "--name",
            "x",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("field event_type: must match"),
        "{}",
        text(&out.stderr)
    );
    let out = beacon(
        &["send", "--url", &url, "--token", "cli-token"],
        Some("{\"event_type\":\"log\",\"event_name\":\"x\"}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "beacon: line 1: field level: missing"
    );
    // An intake that is not there: retried, then a clear failure.
    let (dead_port, _) = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (l.local_addr().unwrap().port(), ())
    };
    let dead = format!("http://127.0.0.1:{dead_port}/v1/events");
    let out = beacon(
        &[
            "send",
            "--url",
            &dead,
            "--name",
            "x",
            "--attempts",
            "2",
            "--timeout",
            "5",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "could not deliver 1 event to {dead} after 2 attempts"
        )),
        "{err}"
    );

    // tail: the last stored events, then new ones as they arrive.
    let mut tail = Command::new(BIN)
        .args(["tail", "--data-dir", data_dir, "-n", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("tail printed nothing")
    };
    let l1 = next();
    let l2 = next();
    assert!(
        l1.contains(" log build ")
            && l1.contains("level=warn")
            && l1.contains("message=\"slow step\""),
        "{l1}"
    );
    assert_eq!(l2, "2026-11-22T02:19:30.000Z behavioral deploy-end");
    let out = beacon(
        &[
            "send",
            "--url",
            &url,
            "--token",
            "cli-token",
            "--name",
            "after-tail",
            "n=7",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let l3 = next();
    assert!(l3.contains(" behavioral after-tail n=7"), "{l3}");
    let _ = tail.kill();
    let _ = tail.wait();

    // query: a table…
    let out = beacon(
        &[
            "query",
            "--data-dir",
            data_dir,
            "SELECT event_type, event_name, count(*) AS n FROM events GROUP BY 1, 2 ORDER BY 1, 2",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "event_type | event_name   | n");
    assert_eq!(lines[1], "-----------+--------------+--");
    assert_eq!(lines[2], "behavioral | after-tail   | 1");
    assert_eq!(lines[3], "behavioral | deploy-end   | 1");
    assert_eq!(lines[4], "behavioral | deploy-start | 1");
    assert_eq!(lines[5], "log        | build        | 2");
    assert_eq!(lines[6], "(4 rows)");
    // …JSON…
    let out = beacon(
        &["query", "--data-dir", data_dir, "--json",
          "SELECT json_extract(data, '$.env') AS env, json_extract(data, '$.attempt') AS attempt, json_extract(data, '$.service_name') AS service FROM events WHERE event_name = 'deploy-start'"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"env": "prod", "attempt": 2, "service": "ci"}])
    );
    // …and writes or bad SQL refused with a clear message.
    let out = beacon(
        &["query", "--data-dir", data_dir, "DELETE FROM events"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("only read-only statements are allowed"),
        "{}",
        text(&out.stderr)
    );
    let out = beacon(&["query", "--data-dir", data_dir, "SELEC nonsense"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("SQL error"),
        "{}",
        text(&out.stderr)
    );
    let out = beacon(
        &["query", "--data-dir", "/nonexistent-beacon-dir", "SELECT 1"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no store at /nonexistent-beacon-dir/beacon.db"));

    let (status, err) = s.terminate();
    assert!(status.success(), "{err}");
    assert!(err.contains("beacon intake stopped"), "{err}");
}
