//! Helpers for the intake's integration tests: the real `beacon` binary on 127.0.0.1, a real
//! SQLite file in a temporary directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_beacon");

/// A `beacon serve` child process.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `beacon serve` on `listen` (use port 0 for a free port) with `data_dir` and
    /// extra arguments, and waits (at most 60 s) for it to print its address.
    pub fn start_on(listen: &str, data_dir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn beacon serve");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let first = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "beacon serve did not start: {}",
                    err_thread.join().unwrap_or_default()
                );
            }
        };
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_owned();
        Server {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            stderr: Some(err_thread),
        }
    }

    /// Starts on a free port.
    pub fn start(data_dir: &Path, args: &[&str]) -> Server {
        Server::start_on("127.0.0.1:0", data_dir, args)
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/events", self.addr)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (at most 60 s) for a clean exit; returns the exit status and stderr.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let err = self.stderr.take().unwrap().join().unwrap_or_default();
                return (st, err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("beacon serve did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn db(&self) -> PathBuf {
        self.data_dir.join("beacon.db")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One integer from a query on the store (opened read-write: the server may be dead).
pub fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// Polls `f` every 50 ms until it returns true or `limit` passes; returns whether it did.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn ev(id: &str, ty: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": id,
        "event_time": "2026-11-22T02:19:30.123Z",
        "event_type": ty,
        "event_name": name,
    })
}

/// A blocking HTTP client for raw requests.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}
