//! `beacon send`: sends events from shell scripts through the SDK's own client and HTTP
//! transport (same validation, batching, gzip and retry policy as any Beacon app).

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon::data::Batch;
use beacon::schema::{self, keys};
use beacon::transport::HttpTransport;
use beacon::{BatchConfig, Client, RetryPolicy, SendError, Transport};
use serde_json::{Map, Value};

/// How `beacon send` authenticates.
#[derive(Debug, Clone, Default)]
pub enum SendAuth {
    /// No credentials (a loopback intake without any configured).
    #[default]
    None,
    /// `Authorization: Bearer`.
    Bearer(String),
    /// Basic auth: `user:password`.
    Basic(String),
    /// `?key=` write key.
    WriteKey(String),
}

/// Options of `beacon send`.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The intake's `POST /v1/events` URL.
    pub url: String,
    /// Credentials.
    pub auth: SendAuth,
    /// Total time to deliver, retries included.
    pub timeout: Duration,
    /// Attempts before giving up (the first included).
    pub attempts: u32,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn new_id(ms: u64) -> String {
    let mut r = [0u8; 10];
    // Without OS randomness the id is still unique per millisecond within this process.
    let _ = getrandom::fill(&mut r);
    String::from_utf8_lossy(&schema::uuid_v7(ms, &r)).into_owned()
}

/// Parses `key=value` (numbers and booleans typed, everything else a string) or
/// `key:=json` (any JSON value).
pub fn parse_attr(arg: &str) -> Result<(String, Value), String> {
    if let Some((k, v)) = arg.split_once(":=") {
        if !k.contains('=') {
            let v = serde_json::from_str(v)
                .map_err(|e| format!("attribute {arg:?}: the value after := is not JSON: {e}"))?;
            return Ok((k.to_owned(), v));
        }
    }
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| format!("attribute {arg:?} must be key=value (or key:=json)"))?;
    let value = match serde_json::from_str::<Value>(v) {
        Ok(n @ Value::Number(_)) | Ok(n @ Value::Bool(_)) => n,
        _ => Value::String(v.to_owned()),
    };
    Ok((k.to_owned(), value))
}

/// Builds one event from the command line: a new `event_id`, the current `event_time`.
pub fn event_from_args(
    event_type: &str,
    name: &str,
    service: Option<&str>,
    attrs: &[String],
) -> Result<Value, String> {
    let ms = now_ms();
    let mut m = Map::new();
    m.insert(keys::EVENT_ID.into(), new_id(ms).into());
    m.insert(
        keys::EVENT_TIME.into(),
        schema::format_rfc3339_ms(ms).into(),
    );
    m.insert(keys::EVENT_TYPE.into(), event_type.into());
    m.insert(keys::EVENT_NAME.into(), name.into());
    if let Some(s) = service {
        m.insert(schema::fields::SERVICE_NAME.into(), s.into());
    }
    for a in attrs {
        let (k, v) = parse_attr(a)?;
        m.insert(k, v);
    }
    schema::validate_object(&m, schema::DEFAULT_MAX_ITEM_BYTES).map_err(|e| e.to_string())?;
    Ok(Value::Object(m))
}

/// Reads NDJSON events (one object per line; blank lines skipped). `event_id` and
/// `event_time` are filled in when absent. The first invalid line is an error naming it.
pub fn events_from_ndjson(input: impl BufRead) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read standard input: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let v: Value =
            serde_json::from_str(&line).map_err(|e| format!("line {n}: malformed JSON: {e}"))?;
        let Value::Object(mut m) = v else {
            return Err(format!("line {n}: item is not a JSON object"));
        };
        let ms = now_ms();
        if !m.contains_key(keys::EVENT_ID) {
            m.insert(keys::EVENT_ID.into(), new_id(ms).into());
        }
        if !m.contains_key(keys::EVENT_TIME) {
            m.insert(
                keys::EVENT_TIME.into(),
                schema::format_rfc3339_ms(ms).into(),
            );
        }
        schema::validate_object(&m, schema::DEFAULT_MAX_ITEM_BYTES)
            .map_err(|e| format!("line {n}: {e}"))?;
        out.push(Value::Object(m));
    }
    if out.is_empty() {
        return Err("no events on standard input (expected NDJSON, one event per line)".into());
    }
    Ok(out)
}

/// Sends events and waits for delivery. `Ok` carries a summary line; `Err` a message that
/// says whether the intake refused the events or could not be reached.
pub fn send(events: &[Value], opts: &SendOptions) -> Result<String, String> {
    let mut b = HttpTransport::builder(opts.url.clone());
    b = match &opts.auth {
        SendAuth::None => b,
        SendAuth::Bearer(t) => b.bearer_token(t.clone()),
        SendAuth::Basic(up) => {
            let (u, p) = up
                .split_once(':')
                .ok_or("--basic-auth must be user:password")?;
            b.basic_auth(u, p)
        }
        SendAuth::WriteKey(k) => b.write_key(k.clone()),
    };
    let http = Arc::new(b.build()?);
    let last: Arc<Mutex<Option<SendError>>> = Arc::default();
    let (h, l) = (http.clone(), last.clone());
    // The SDK's transport, wrapped only to remember its last error for the message.
    let transport = move |batch: Batch| {
        let (h, l) = (h.clone(), l.clone());
        async move {
            let r = h.send(batch).await;
            if let Err(e) = &r {
                *l.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            }
            r
        }
    };
    let client = Client::builder()
        .transport(transport)
        .batch_config(BatchConfig {
            flush_interval: Duration::from_secs(3600),
            ..BatchConfig::default()
        })
        .retry_policy(RetryPolicy {
            max_attempts: opts.attempts.max(1),
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            budget: opts.timeout,
        })
        .build()
        .map_err(|e| e.to_string())?;
    for e in events {
        client.record_raw(e).map_err(|e| e.to_string())?;
    }
    let flushed = client.shutdown_blocking(opts.timeout + Duration::from_secs(2));
    let stats = client.stats();
    let n = events.len();
    if flushed.is_ok() && stats.dropped.total() == 0 && stats.delivered >= n as u64 {
        return Ok(format!(
            "sent {n} event{} to {}",
            if n == 1 { "" } else { "s" },
            opts.url
        ));
    }
    let last = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let s = if n == 1 { "" } else { "s" };
    Err(match last {
        Some(SendError::GiveUp { reason }) => {
            format!("the intake refused the events: {reason}")
        }
        Some(SendError::Retry { reason, .. }) => format!(
            "could not deliver {n} event{s} to {} after {} attempts: {reason}",
            opts.url, opts.attempts
        ),
        None => format!(
            "could not deliver {n} event{s} to {} within {} s",
            opts.url,
            opts.timeout.as_secs()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_typed() {
        assert_eq!(parse_attr("n=3").unwrap(), ("n".into(), Value::from(3)));
        assert_eq!(
            parse_attr("ok=true").unwrap(),
            ("ok".into(), Value::Bool(true))
        );
        assert_eq!(
            parse_attr("env=prod").unwrap(),
            ("env".into(), Value::from("prod"))
        );
        assert_eq!(
            parse_attr("q=a=b").unwrap(),
            ("q".into(), Value::from("a=b"))
        );
        assert_eq!(
            parse_attr("tags:=[\"a\"]").unwrap(),
            ("tags".into(), serde_json::json!(["a"]))
        );
        assert!(parse_attr("novalue").unwrap_err().contains("key=value"));
    }

    #[test]
    fn events_are_validated_before_sending() {
        let e = event_from_args("behavioral", "deploy-start", Some("ci"), &["n=1".into()]).unwrap();
        assert_eq!(e["event_name"], "deploy-start");
        assert_eq!(e["service_name"], "ci");
        assert_eq!(e["event_id"].as_str().unwrap().len(), 36);
        let err = event_from_args("Bad Type", "x", None, &[]).unwrap_err();
        assert!(err.contains("event_type"), "{err}");
        let err = event_from_args("behavioral", "x", None, &["event_x=1".into()]).unwrap_err();
        assert!(err.contains("event_x"), "{err}");

        let input = "{\"event_type\":\"log\",\"event_name\":\"a\",\"level\":\"info\",\"message\":\"hi\"}\n\n{\"event_type\":\"log\",\"event_name\":\"b\"}\n";
        let err = events_from_ndjson(input.as_bytes()).unwrap_err();
        assert_eq!(err, "line 3: field level: missing");
        let ok = events_from_ndjson(&input.as_bytes()[..input.find("\n\n").unwrap()]).unwrap();
        assert_eq!(ok.len(), 1);
        assert!(ok[0]["event_time"].is_string());
    }
}
