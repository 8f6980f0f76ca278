//! A real HTTP intake stand-in on 127.0.0.1 that a test can tell to fail, throttle or stall.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200, and the items are stored.
    Ok,
    /// This status, items not stored.
    Status(u16),
    /// This status with a `Retry-After` header, items not stored.
    RetryAfter(u16, String),
    /// Wait, then store and answer 200 (the client may have given up by then).
    Slow(Duration),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub status: u16,
    pub items: usize,
    pub gzip: bool,
    pub content_type: String,
    pub authorization: Option<String>,
    pub key: Option<String>,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    default: Option<Reply>,
    /// event_id -> times stored.
    stored: HashMap<String, u32>,
    bodies: Vec<String>,
    requests: Vec<Seen>,
}

#[derive(Clone, Default)]
pub struct TestServer {
    inner: Arc<Mutex<Inner>>,
    pub addr: Option<SocketAddr>,
}

impl TestServer {
    /// Starts a server on a free port of 127.0.0.1, on its own thread.
    pub fn start() -> TestServer {
        let mut server = TestServer::default();
        let inner = server.inner.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/v1/events", post(handle))
                    .with_state(inner);
                axum::serve(listener, app).await.unwrap();
            });
        });
        server.addr = Some(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/events", self.addr.unwrap())
    }

    /// The next requests get these replies, then the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    /// Every request without a scripted reply gets this one (`None`: 200).
    pub fn set_default(&self, reply: Option<Reply>) {
        self.inner.lock().unwrap().default = reply;
    }

    /// Stored event ids with how often each was stored.
    pub fn stored(&self) -> HashMap<String, u32> {
        self.inner.lock().unwrap().stored.clone()
    }

    /// Bodies of stored requests (decompressed).
    pub fn bodies(&self) -> Vec<String> {
        self.inner.lock().unwrap().bodies.clone()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Stored items parsed as JSON.
    pub fn items(&self) -> Vec<serde_json::Value> {
        self.bodies()
            .iter()
            .flat_map(|b| {
                b.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn event_id(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("{\"event_id\":\"")?;
    rest.split('"').next()
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let text = if gzip {
        let mut s = String::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut s)
            .is_err()
        {
            return (StatusCode::BAD_REQUEST, "bad gzip").into_response();
        }
        s
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let reply = {
        let mut g = inner.lock().unwrap();
        g.script
            .pop_front()
            .or_else(|| g.default.clone())
            .unwrap_or(Reply::Ok)
    };
    let status = match &reply {
        Reply::Ok | Reply::Slow(_) => 200,
        Reply::Status(s) | Reply::RetryAfter(s, _) => *s,
    };
    let items = text.lines().filter(|l| !l.is_empty()).count();
    inner.lock().unwrap().requests.push(Seen {
        at: Instant::now(),
        status,
        items,
        gzip,
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        key: q.get("key").cloned(),
    });
    if let Reply::Slow(d) = &reply {
        // If the client gives up first, hyper drops this future here: nothing is stored.
        tokio::time::sleep(*d).await;
    }
    let mut g = inner.lock().unwrap();
    if status == 200 {
        for line in text.lines().filter(|l| !l.is_empty()) {
            let id = event_id(line).unwrap_or("<no id>").to_owned();
            *g.stored.entry(id).or_default() += 1;
        }
        g.bodies.push(text);
        return (
            StatusCode::OK,
            format!("{{\"accepted\":{items},\"duplicates\":0,\"rejected\":[]}}"),
        )
            .into_response();
    }
    let mut resp = (StatusCode::from_u16(status).unwrap(), "not now").into_response();
    if let Reply::RetryAfter(_, v) = reply {
        resp.headers_mut().insert("retry-after", v.parse().unwrap());
    }
    resp
}
