//! `beacon serve`: the HTTP server (axum on tokio).
//!
//! `POST /v1/events` runs, in order: CORS origin check, authentication, content type and
//! encoding, body size (compressed, then decompressed), parsing and validation, the per-key
//! rate limit, and the sink (SQLite, committed before the answer; or the forward queue).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::auth::{AuthError, Credentials, Identity};
use crate::body::{self, BodyError, Format, Limits, Parsed};
use crate::forward::{ForwardConfig, ForwardError, Forwarder};
use crate::metrics::Metrics;
use crate::store::{Inserted, Store, StoreError, SyncMode};

/// The default listen address: loopback, port 7070.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// Which origins may call the intake from a browser.
#[derive(Debug, Clone, Default)]
pub struct Origins(Vec<String>);

impl Origins {
    /// From a list: exact origins (`https://app.example.com`) or `*` for any.
    pub fn new(list: &[String]) -> Origins {
        Origins(
            list.iter()
                .map(|s| s.trim().trim_end_matches('/').to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }

    /// Whether `origin` may call.
    pub fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == "*" || o == origin)
    }

    fn describe(&self) -> String {
        if self.0.is_empty() {
            "none are configured (--allow-origin)".into()
        } else {
            self.0.join(", ")
        }
    }
}

/// Everything `beacon serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the SQLite database lives.
    pub data_dir: PathBuf,
    /// Tokens, basic-auth users and write keys. Empty: loopback only, no auth.
    pub credentials: Credentials,
    /// Origins allowed by CORS.
    pub origins: Origins,
    /// Largest request body as received (compressed), in bytes.
    pub max_body_bytes: usize,
    /// Largest body after decompression, in bytes.
    pub max_decompressed_bytes: usize,
    /// Item count and size limits.
    pub limits: Limits,
    /// Items per second per key (each token, basic-auth user and write key has its own bucket;
    /// without credentials all requests share one); `None` for no limit. Bursts of one
    /// second's worth are allowed.
    pub rate_limit: Option<f64>,
    /// Most items waiting for the store before requests are shed with 503.
    pub max_pending_items: usize,
    /// SQLite durability.
    pub sync: SyncMode,
    /// Proxy mode: forward instead of storing.
    pub forward: Option<ForwardConfig>,
    /// Kafka mode: produce to Kafka instead of storing (stateless).
    #[cfg(feature = "kafka")]
    pub kafka: Option<crate::kafka::KafkaSinkConfig>,
    /// How long shutdown waits for in-flight requests and the forward queue.
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7070))),
            data_dir: PathBuf::from("beacon-data"),
            credentials: Credentials::default(),
            origins: Origins::default(),
            max_body_bytes: 1024 * 1024,
            max_decompressed_bytes: 8 * 1024 * 1024,
            limits: Limits::default(),
            rate_limit: None,
            max_pending_items: 200_000,
            sync: SyncMode::Full,
            forward: None,
            #[cfg(feature = "kafka")]
            kafka: None,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeConfig {
    /// Refuses configurations that would expose an open intake.
    pub fn check(&self) -> Result<(), String> {
        if self.credentials.is_empty() && !self.listen.ip().is_loopback() {
            return Err(format!(
                "refusing to listen on {} without credentials: set --token / BEACON_TOKENS, \
                 --basic-auth / BEACON_BASIC_AUTH or --write-key / BEACON_WRITE_KEYS, \
                 or listen on 127.0.0.1",
                self.listen
            ));
        }
        if self.max_body_bytes == 0 || self.max_decompressed_bytes == 0 {
            return Err("body size limits must be greater than zero".into());
        }
        if self.limits.max_items == 0 || self.limits.max_item_bytes == 0 {
            return Err("item limits must be greater than zero".into());
        }
        if let Some(r) = self.rate_limit {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!(
                    "rate limit {r} must be a positive number of items per second"
                ));
            }
        }
        Ok(())
    }
}

enum Sink {
    Store(Store),
    Forward(Forwarder),
    #[cfg(feature = "kafka")]
    Kafka(crate::kafka::KafkaSink),
}

/// Token buckets per identity.
struct RateLimiter {
    rate: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes `n` tokens; refuses (with the seconds to wait) while the bucket is empty. A
    /// request may take the bucket below zero, so a large batch is never refused forever.
    fn take(&self, key: &str, n: usize) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (level, at) = map.entry(key.to_owned()).or_insert((self.rate, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * self.rate).min(self.rate);
        *at = now;
        if *level <= 0.0 {
            return Err(((-*level / self.rate).ceil() as u64).max(1));
        }
        *level -= n as f64;
        Ok(())
    }
}

struct AppState {
    cfg: ServeConfig,
    sink: Sink,
    metrics: Metrics,
    limiter: Option<RateLimiter>,
}

/// An error answer: a status, a JSON body `{"error": "..."}`, and maybe `Retry-After`.
struct Fail {
    status: StatusCode,
    reason: &'static str,
    message: String,
    retry_after: Option<u64>,
    www_authenticate: bool,
}

impl Fail {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Fail {
        Fail {
            status,
            reason,
            message: message.into(),
            retry_after: None,
            www_authenticate: false,
        }
    }

    fn retry_after(mut self, secs: u64) -> Fail {
        self.retry_after = Some(secs);
        self
    }
}

impl From<BodyError> for Fail {
    fn from(e: BodyError) -> Fail {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Fail::new(status, e.reason(), e.to_string())
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, json!({ "error": self.message }));
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.www_authenticate {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"beacon\", Basic realm=\"beacon\""),
            );
        }
        r
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `?key=` in a query string, decoded.
pub fn query_key(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "key")
        .map(|(_, v)| percent_decode(v))
}

fn cors_headers(r: &mut Response, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
}

fn check_origin(st: &AppState, headers: &HeaderMap) -> Result<Option<String>, Fail> {
    match header_str(headers, header::ORIGIN) {
        None => Ok(None),
        Some(o) if st.cfg.origins.allows(o) => Ok(Some(o.to_owned())),
        Some(o) => Err(Fail::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "origin {o:?} is not allowed by CORS; allowed origins: {}",
                st.cfg.origins.describe()
            ),
        )),
    }
}

fn authenticate(
    st: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    allow_key: bool,
) -> Result<Identity, Fail> {
    let key = query_key(query);
    st.cfg
        .credentials
        .check(
            header_str(headers, header::AUTHORIZATION),
            key.as_deref(),
            allow_key,
        )
        .map_err(|e: AuthError| {
            let mut f = Fail::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string());
            f.www_authenticate = true;
            f
        })
}

async fn preflight(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let origin = match check_origin(&st, &headers) {
        Ok(Some(o)) => o,
        Ok(None) => {
            return Fail::new(
                StatusCode::BAD_REQUEST,
                "bad_preflight",
                "CORS preflight without an Origin header",
            )
            .into_response()
        }
        Err(f) => return f.into_response(),
    };
    let mut r = StatusCode::NO_CONTENT.into_response();
    cors_headers(&mut r, &origin);
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, content-encoding"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

async fn post_events(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let start = Instant::now();
    let origin = header_str(req.headers(), header::ORIGIN)
        .filter(|o| st.cfg.origins.allows(o))
        .map(str::to_owned);
    let mut resp = match handle_events(&st, req).await {
        Ok(r) => r,
        Err(f) => {
            st.metrics.add_rejected(f.reason, 1);
            f.into_response()
        }
    };
    if let Some(o) = origin {
        cors_headers(&mut resp, &o);
    }
    st.metrics
        .observe_request(resp.status().as_u16(), start.elapsed());
    resp
}

async fn handle_events(st: &AppState, req: Request) -> Result<Response, Fail> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    check_origin(st, headers)?;
    let who = authenticate(st, headers, parts.uri.query(), true)?;
    let ct = header_str(headers, header::CONTENT_TYPE);
    let format = Format::from_content_type(ct).ok_or_else(|| {
        Fail::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_content_type",
            format!(
                "content type {:?} is not accepted; send application/json, application/x-ndjson or text/plain",
                ct.unwrap_or("")
            ),
        )
    })?;
    let gzip = match header_str(headers, header::CONTENT_ENCODING).map(str::trim) {
        None | Some("") | Some("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => true,
        Some(e) => {
            return Err(Fail::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_content_encoding",
                format!("content encoding {e:?} is not accepted; send gzip or no encoding"),
            ))
        }
    };
    let max = st.cfg.max_body_bytes;
    let too_big = || {
        Fail::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body is over the limit of {max} bytes; send smaller batches"),
        )
    };
    if let Some(len) =
        header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(too_big());
        }
    }
    let raw = axum::body::to_bytes(body, max).await.map_err(|e| {
        // The only error besides the limit is a broken connection; say which.
        let msg = e.to_string();
        if msg.contains("length limit")
            || std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
        {
            too_big()
        } else {
            Fail::new(
                StatusCode::BAD_REQUEST,
                "body_read",
                format!("cannot read the body: {msg}"),
            )
        }
    })?;
    let decoded = body::decode(&raw, gzip, st.cfg.max_decompressed_bytes)?;
    st.metrics.add_bytes(raw.len() as u64, decoded.len() as u64);
    let parsed: Parsed = body::parse(&decoded, format, &st.cfg.limits)?;
    drop(decoded);
    if let Some(lim) = &st.limiter {
        let key = match &who {
            Identity::Anonymous => "anonymous".to_owned(),
            other => other.to_string(),
        };
        if let Err(wait) = lim.take(&key, parsed.total()) {
            return Err(Fail::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "rate limit exceeded for {who}: {} items per second; retry after {wait} s",
                    lim.rate
                ),
            )
            .retry_after(wait));
        }
    }
    let Parsed { valid, rejected } = parsed;
    let n_valid = valid.len();
    let result = match &st.sink {
        Sink::Store(store) => store.insert(valid).await.map_err(|e| {
            st.metrics.add_sink_error();
            let reason = match e {
                StoreError::Busy { .. } => "store_busy",
                StoreError::Failed(_) => "store_failed",
            };
            Fail::new(StatusCode::SERVICE_UNAVAILABLE, reason, e.to_string()).retry_after(1)
        })?,
        Sink::Forward(fwd) => {
            let n = fwd.queue(&valid).map_err(|e| {
                st.metrics.add_sink_error();
                let reason = match e {
                    ForwardError::Full { .. } => "forward_queue_full",
                    ForwardError::Closed => "forward_closed",
                };
                Fail::new(StatusCode::SERVICE_UNAVAILABLE, reason, e.to_string()).retry_after(1)
            })?;
            st.metrics.add_forwarded(n as u64);
            Inserted {
                accepted: n,
                duplicates: 0,
            }
        }
        #[cfg(feature = "kafka")]
        Sink::Kafka(k) => k.insert(&valid).await.map_err(|e| {
            st.metrics.add_sink_error();
            match e {
                crate::kafka::KafkaSinkError::Busy { retry_after, .. } => {
                    Fail::new(StatusCode::SERVICE_UNAVAILABLE, "kafka_busy", e.to_string())
                        .retry_after(retry_after)
                }
                crate::kafka::KafkaSinkError::Refused(_) => {
                    Fail::new(StatusCode::BAD_REQUEST, "kafka_refused", e.to_string())
                }
            }
        })?,
    };
    st.metrics.add_accepted(result.accepted as u64);
    st.metrics.add_duplicates(result.duplicates as u64);
    for r in &rejected {
        st.metrics.add_rejected(r.reason, 1);
    }
    let rejected_json: Vec<_> = rejected
        .iter()
        .map(|r| json!({"index": r.index, "error": r.error}))
        .collect();
    let mut answer = json!({
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": rejected_json,
    });
    // Nothing in the request was usable: a client error, so the sender does not retry it.
    let status = if n_valid == 0 && !rejected.is_empty() {
        answer["error"] = json!(format!(
            "every item was rejected; first: item {}: {}",
            rejected[0].index, rejected[0].error
        ));
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, answer))
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let mode = match &st.sink {
        Sink::Store(s) => {
            json!({"status": "ok", "sink": "sqlite", "path": s.path().display().to_string(), "pending_items": s.pending()})
        }
        Sink::Forward(f) => json!({"status": "ok", "sink": "forward", "queued_items": f.held()}),
        #[cfg(feature = "kafka")]
        Sink::Kafka(k) => json!({"status": "ok", "sink": "kafka", "in_flight": k.in_flight()}),
    };
    json_response(StatusCode::OK, mode)
}

async fn metrics(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Err(f) = authenticate(&st, &headers, uri.query(), false) {
        return f.into_response();
    }
    let extra: Vec<(&str, &str, f64)> = match &st.sink {
        Sink::Store(s) => vec![(
            "beacon_intake_store_pending_items",
            "Items waiting for the SQLite writer.",
            s.pending() as f64,
        )],
        Sink::Forward(f) => {
            let s = f.stats();
            vec![
                (
                    "beacon_intake_forward_queued_items",
                    "Items waiting for the upstream intake.",
                    f.held() as f64,
                ),
                (
                    "beacon_intake_forward_delivered_items",
                    "Items delivered to the upstream intake since start.",
                    s.delivered as f64,
                ),
                (
                    "beacon_intake_forward_dropped_items",
                    "Items the forward queue dropped since start (all reasons; reported upstream as client_report).",
                    s.dropped.total() as f64,
                ),
            ]
        }
        #[cfg(feature = "kafka")]
        Sink::Kafka(k) => vec![(
            "beacon_intake_kafka_in_flight_messages",
            "Messages produced to Kafka and not yet acknowledged.",
            k.in_flight() as f64,
        )],
    };
    let mut r = st.metrics.render(&extra).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn not_found(uri: axum::http::Uri) -> Response {
    Fail::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {}; use POST /v1/events, GET /healthz or GET /metrics",
            uri.path()
        ),
    )
    .into_response()
}

/// A running server's address and where it stores.
#[derive(Debug, Clone)]
pub struct Started {
    /// The address it listens on (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// A description of the sink: the database path or the upstream URL.
    pub sink: String,
}

/// Runs the server until `shutdown` resolves, then stops accepting, finishes in-flight
/// requests, drains the store's queue and flushes the forward queue. `on_start` is called
/// once the socket is bound.
pub async fn run(
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(&Started),
) -> Result<(), String> {
    cfg.check()?;
    #[cfg(feature = "kafka")]
    let mut kafka = match cfg.kafka.clone() {
        Some(k) => Some((
            k.brokers.clone(),
            // Connecting checks the brokers and topics: it blocks for up to 10 s.
            tokio::task::spawn_blocking(move || crate::kafka::KafkaSink::connect(&k))
                .await
                .map_err(|e| e.to_string())??,
        )),
        None => None,
    };
    let (sink, sink_desc) = match &cfg.forward {
        #[cfg(feature = "kafka")]
        _ if kafka.is_some() => {
            let (brokers, k) = kafka.take().expect("checked");
            (Sink::Kafka(k), format!("kafka {brokers}"))
        }
        Some(f) => (
            Sink::Forward(Forwarder::new(f)?),
            format!("forward to {}", f.url),
        ),
        None => {
            let store = Store::open(&cfg.data_dir, cfg.sync, cfg.max_pending_items)?;
            let d = format!("sqlite {}", store.path().display());
            (Sink::Store(store), d)
        }
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let limiter = cfg.rate_limit.map(|rate| RateLimiter {
        rate,
        buckets: Mutex::new(HashMap::new()),
    });
    let timeout = cfg.shutdown_timeout;
    let state = Arc::new(AppState {
        cfg,
        sink,
        metrics: Metrics::default(),
        limiter,
    });
    let app = Router::new()
        .route("/v1/events", post(post_events).options(preflight))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state.clone());
    on_start(&Started {
        addr,
        sink: sink_desc,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stop_rx2 = stop_rx.clone();
    let served = tokio::select! {
        r = server => r.map_err(|e| e.to_string()),
        // In-flight requests get `timeout` to finish once shutdown has begun.
        _ = async {
            let _ = stop_rx2.wait_for(|s| *s).await;
            tokio::time::sleep(timeout).await;
        } => Err("in-flight requests did not finish before the shutdown timeout".into()),
    };
    drop(stop_rx);
    let state = Arc::into_inner(state);
    let flushed = match state.map(|s| s.sink) {
        Some(Sink::Store(store)) => tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|e| e.to_string()),
        Some(Sink::Forward(fwd)) => fwd.shutdown(timeout).await,
        #[cfg(feature = "kafka")]
        Some(Sink::Kafka(k)) => k.shutdown(timeout).await,
        None => Ok(()),
    };
    served.and(flushed)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_query_strings() {
        assert_eq!(query_key(Some("a=1&key=pk%20x")), Some("pk x".into()));
        assert_eq!(query_key(Some("key=abc%")), Some("abc%".into()));
        assert_eq!(query_key(Some("a=1")), None);
        assert_eq!(query_key(None), None);
    }

    #[test]
    fn rate_limit_refuses_then_recovers() {
        let l = RateLimiter {
            rate: 10.0,
            buckets: Mutex::new(HashMap::new()),
        };
        assert!(l.take("k", 25).is_ok());
        let wait = l.take("k", 1).unwrap_err();
        assert!(wait >= 1, "{wait}");
        assert!(l.take("other", 1).is_ok());
    }

    #[test]
    fn open_intake_only_on_loopback() {
        let mut c = ServeConfig::default();
        assert!(c.check().is_ok());
        c.listen = "0.0.0.0:7070".parse().unwrap();
        assert!(c.check().unwrap_err().contains("without credentials"));
        c.credentials = Credentials::new(&["t".into()], &[], &[]).unwrap();
        assert!(c.check().is_ok());
    }
}
