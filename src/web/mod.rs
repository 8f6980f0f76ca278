//! The browser build's `#[wasm_bindgen]` exports: a JS-friendly handle on [`Client`]
//! ([`BeaconCore`]) and page-exit delivery ([`lifecycle`]). The npm package's JS layer
//! (`js/`) wraps these in its `Beacon` class.
//!
//! The exports are few and thin, because every export costs the wasm and the glue code: the
//! JS layer checks the options and fills in their defaults, reads the browser context
//! (`install_id`, `session_id`, page attributes), listens for page exit and hands over
//! options and attributes as flat arrays (see `convert`). Batching, sampling, aggregation,
//! encoding, retries and page-exit draining all happen here, in the same core as natively.

mod convert;
mod lifecycle;

use std::rc::Rc;

use js_sys::Array;
use wasm_bindgen::prelude::*;

use crate::batch::{BatchConfig, FlushError};
use crate::data::{Level, SpanContext, SpanStatus, UsageUnit};
use crate::rt::Duration;
use crate::transport::{BodyFormat, HttpTransport, RetryPolicy};
use crate::{Client, ConfigError, Span};

use convert::{attrs, borrow_attrs, err, pairs};
use lifecycle::PageExit;

/// Talc rather than std's dlmalloc: a smaller allocator for single-threaded wasm, growing
/// the wasm memory as needed.
#[global_allocator]
static ALLOC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// The message of a [`ConfigError`], written without `core::fmt` (which would cost the wasm
/// several KB).
fn config_error(e: ConfigError) -> JsError {
    let msg = match e {
        ConfigError::InvalidSampleRate { what, .. } => [
            "options: sample rate for ",
            &what,
            " must be between 0 and 1",
        ]
        .concat(),
        ConfigError::InvalidAttribute { key, .. } => {
            ["options: attribute \"", &key, "\" breaks the event schema"].concat()
        }
        ConfigError::InvalidLimit(what) => {
            ["options: ", what, " must be greater than zero"].concat()
        }
        ConfigError::NoTransport => "options: no transport".into(),
    };
    err(&msg)
}

/// The message of a [`FlushError`], written without `core::fmt`.
fn flush_error(e: FlushError) -> String {
    match e {
        FlushError::Pending { items } => [
            itoa::Buffer::new().format(items),
            " items could not be delivered yet; they stay queued",
        ]
        .concat(),
        FlushError::Timeout => "flush timed out".into(),
        FlushError::Closed | FlushError::WouldBlock => "the client is shut down".into(),
    }
}

/// A Beacon client for the browser: the wasm side of the npm package's `Beacon` class.
#[wasm_bindgen]
pub struct BeaconCore {
    client: Client,
    exit: Rc<PageExit>,
}

#[wasm_bindgen]
impl BeaconCore {
    /// Builds a client and starts the background flushing. `cfg` is the array `js/index.js`
    /// makes from the checked options, defaults filled in: `[intakeUrl, writeKey, json,
    /// headers, requestTimeoutMs, flushIntervalMs, maxBatchSize, maxBatchBytes,
    /// maxQueueItems, maxQueueBytes, maxAttempts, initialBackoffMs, maxBackoffMs, budgetMs,
    /// sdk, serviceName, serviceVersion, userId, isDev, sampleRate, sampleRates,
    /// usageGranularityMs, attrs]` (maps as flat `[key, value, …]` arrays).
    #[wasm_bindgen(constructor)]
    pub fn new(cfg: &Array) -> Result<BeaconCore, JsError> {
        let num = |i| cfg.get(i).as_f64();
        let n = |i| num(i).unwrap_or(0.0);
        let ms = |i| Duration::from_millis(n(i) as u64);
        let str = |i| cfg.get(i).as_string();

        let mut http = HttpTransport::builder(str(0).unwrap_or_default());
        if let Some(k) = str(1) {
            http = http.write_key(k);
        }
        let format = if cfg.get(2).is_truthy() {
            BodyFormat::JsonArray
        } else {
            BodyFormat::Ndjson
        };
        http = http.format(format).timeout(ms(4));
        for (k, v) in pairs(&cfg.get(3)) {
            http = http.header(k, v.as_string().unwrap_or_default());
        }
        let http = http.build().map_err(|e| err(&["options: ", &e].concat()))?;
        let batch = BatchConfig {
            flush_interval: ms(5),
            max_batch_size: n(6) as usize,
            max_batch_bytes: n(7) as usize,
            max_queue_items: n(8) as usize,
            max_memory_bytes: n(9) as usize,
            ..BatchConfig::default()
        };
        let retry = RetryPolicy {
            max_attempts: n(10) as u32,
            initial_backoff: ms(11),
            max_backoff: ms(12),
            budget: ms(13),
        };
        let sdk =
            str(14).unwrap_or_else(|| concat!("beacon-js/", env!("CARGO_PKG_VERSION")).into());
        let exit_url = PageExit::url_of(&http);
        let mut b = Client::builder()
            .transport(http)
            .batch_config(batch)
            .retry_policy(retry)
            .attr(crate::schema::fields::SDK, sdk);
        if let Some(v) = str(15) {
            b = b.service_name(v);
        }
        if let Some(v) = str(16) {
            b = b.service_version(v);
        }
        if let Some(v) = str(17) {
            b = b.user_id(v);
        }
        if let Some(v) = cfg.get(18).as_bool() {
            b = b.is_dev(v);
        }
        if let Some(r) = num(19) {
            b = b.sample_rate(r);
        }
        for (t, r) in pairs(&cfg.get(20)) {
            b = b.sample_rate_for(t, r.as_f64().unwrap_or(1.0));
        }
        if num(21).is_some() {
            b = b.usage_granularity(ms(21));
        }
        for (k, v) in attrs(&cfg.get(22)) {
            b = b.attr(k, v);
        }
        let client = b.build().map_err(config_error)?;
        let exit = Rc::new(PageExit::new(client.clone(), exit_url, format));
        Ok(BeaconCore { client, exit })
    }

    /// Records an event (`kind` 0: `a` is the event type, `b` the name) or a log record
    /// (`kind` 1 to 6: trace, debug, info, warn, error, fatal; `a` is the message).
    pub fn record(&self, kind: u8, a: &str, b: &str, attrs: &JsValue) {
        const LEVELS: [Level; 6] = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
            Level::Fatal,
        ];
        let attrs = convert::attrs(attrs);
        let attrs = borrow_attrs(&attrs);
        match LEVELS.get((kind as usize).wrapping_sub(1)) {
            Some(level) => self.client.log(*level, a, &attrs),
            None => self.client.record(a, b, &attrs),
        }
    }

    /// Records a metric: `kind` 0 is one plain value (not aggregated), 1 a counter, 2 a
    /// gauge, 3 a histogram (summed per name and attributes, sent once per flush interval),
    /// 4 a counter increment as its own item (`attrs` unused).
    pub fn metric(&self, kind: u8, name: &str, value: f64, attrs: &JsValue) {
        let attrs = convert::attrs(attrs);
        let attrs = borrow_attrs(&attrs);
        let c = &self.client;
        match kind {
            0 => c.record_metric(name, value, &attrs),
            1 => c.counter(name, value, &attrs),
            2 => c.gauge(name, value, &attrs),
            3 => c.histogram(name, value, &attrs),
            _ => c.incr(name, value as i64),
        }
    }

    /// Records usage of a resource by a feature; `unit` 0 is milliseconds, 1 bytes, 2
    /// bytes times seconds (the JS layer checks `unit` and `amount`).
    pub fn usage(&self, resource_id: &str, app_feature: &str, amount: f64, unit: u8) {
        let unit = match unit {
            0 => UsageUnit::Milliseconds,
            1 => UsageUnit::Bytes,
            _ => UsageUnit::BytesSec,
        };
        self.client
            .usage(resource_id, app_feature, amount as u64, unit);
    }

    /// Starts a span: a child of `parent` when given (the 25 bytes of a W3C `traceparent`
    /// the JS layer has checked and parsed: trace id, span id, flags), else of the innermost
    /// span not yet ended, else a new trace.
    #[wasm_bindgen(js_name = startSpan)]
    pub fn start_span(&self, name: &str, parent: &[u8]) -> SpanHandle {
        let parent = match parent {
            [trace @ .., s0, s1, s2, s3, s4, s5, s6, s7, flags] if trace.len() == 16 => {
                let mut cx = SpanContext {
                    trace_id: [0; 16],
                    span_id: [*s0, *s1, *s2, *s3, *s4, *s5, *s6, *s7],
                    sampled: flags & 1 == 1,
                };
                cx.trace_id.copy_from_slice(trace);
                Some(cx)
            }
            _ => None,
        };
        SpanHandle {
            span: Some(self.client.span_owned(name, parent.as_ref())),
        }
    }

    /// A child client that adds these attributes to every item and shares this pipeline.
    pub fn with(&self, attrs: &JsValue) -> BeaconCore {
        let attrs = convert::attrs(attrs);
        BeaconCore {
            client: self.client.with(&borrow_attrs(&attrs)),
            exit: self.exit.clone(),
        }
    }

    /// Sends everything recorded so far, then calls `done` with `undefined`, or with the
    /// error message (how many items are still queued) when some could not be delivered
    /// (they stay queued for the next try). With `shutdown_ms`, sends everything (open usage
    /// buckets included) within that time, then stops: later records are ignored. (A
    /// callback rather than an `async fn`: the JS layer makes the Promise, which keeps
    /// `future_to_promise` out of the wasm.)
    pub fn flush(&self, shutdown_ms: Option<f64>, done: js_sys::Function) {
        let client = self.client.clone();
        crate::rt::spawn(async move {
            let r = match shutdown_ms {
                Some(ms) => client.shutdown(Duration::from_millis(ms as u64)).await,
                None => client.flush().await,
            };
            let msg = match r {
                Ok(()) => JsValue::UNDEFINED,
                Err(e) => flush_error(e).into(),
            };
            let _ = done.call1(&JsValue::UNDEFINED, &msg);
        });
    }

    /// Drains the queue into page-exit requests now (the JS layer calls it on `pagehide` and
    /// when the page is hidden). Returns the number of items handed to the browser.
    #[wasm_bindgen(js_name = pageExit)]
    pub fn page_exit(&self) -> u32 {
        self.exit.drain() as u32
    }

    /// The batching core's counters, in the order of `STATS` in `js/index.js`: queued items,
    /// queued bytes, items in flight, accepted, delivered, batches sent, batches failed, last
    /// flush (Unix ms, 0 if none), then the drops: queue full, too large, invalid, sampled
    /// out, delivery failed.
    pub fn stats(&self) -> Vec<f64> {
        let s = self.client.stats();
        let d = s.dropped;
        [
            s.queued_items as u64,
            s.queued_bytes as u64,
            s.inflight_items as u64,
            s.accepted,
            s.delivered,
            s.batches_sent,
            s.batches_failed,
            s.last_flush_unix_ms.unwrap_or(0),
            d.queue_full,
            d.too_large,
            d.invalid,
            d.sampled_out,
            d.delivery_failed,
        ]
        .map(|v| v as f64)
        .to_vec()
    }
}

/// A span in progress (see `BeaconCore::startSpan`). Sent when ended.
#[wasm_bindgen]
pub struct SpanHandle {
    span: Option<Span<'static>>,
}

#[wasm_bindgen]
impl SpanHandle {
    /// The span's context as 25 bytes (trace id, span id, flags; empty once ended): the JS
    /// layer writes the `traceparent` value and the hex ids from them.
    #[wasm_bindgen(getter)]
    pub fn context(&self) -> Vec<u8> {
        let Some(span) = &self.span else {
            return Vec::new();
        };
        let cx = span.context();
        let mut out = Vec::with_capacity(25);
        out.extend_from_slice(&cx.trace_id);
        out.extend_from_slice(&cx.span_id);
        out.push(cx.sampled as u8);
        out
    }

    /// Sets attributes (a flat `[key, value, …]` array).
    #[wasm_bindgen(js_name = setAttrs)]
    pub fn set_attrs(&mut self, attrs: &JsValue) {
        if let Some(span) = self.span.as_mut() {
            for (k, v) in convert::attrs(attrs) {
                span.set_attr(&k, v);
            }
        }
    }

    /// Ends the span with `status` (`ok`, `error` with `message`, else unset) and records
    /// it (once; later calls do nothing).
    pub fn end(&mut self, status: Option<String>, message: Option<String>) {
        if let Some(mut span) = self.span.take() {
            span.set_status(match status.as_deref() {
                Some("ok") => SpanStatus::Ok,
                Some("error") => SpanStatus::Error(message.unwrap_or_default()),
                _ => SpanStatus::Unset,
            });
            span.end();
        }
    }
}
