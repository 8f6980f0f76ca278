//! The browser build's `#[wasm_bindgen]` exports: a JS-friendly handle on [`Client`]
//! ([`BeaconCore`]), page-exit delivery ([`lifecycle`]) and the browser context
//! ([`context`]). The npm package's JS layer (`js/`) wraps these in its `Beacon` class.
//!
//! Options and attributes arrive as plain JS objects and are read with `Reflect` rather
//! than through JSON and serde: that keeps the wasm small (see `npm run size`).

mod context;
mod convert;
mod lifecycle;

use std::rc::Rc;

use wasm_bindgen::prelude::*;

use crate::batch::BatchConfig;
use crate::data::{Level, SpanContext, SpanStatus, UsageUnit};
use crate::rt::Duration;
use crate::transport::{BodyFormat, HttpTransport, RetryPolicy};
use crate::{Client, ConfigError, Span};

use context::BrowserContext;
use convert::{borrow_attrs, err, Opts};
use lifecycle::PageExit;

/// Talc rather than std's dlmalloc: a smaller allocator for single-threaded wasm, growing
/// the wasm memory as needed.
#[global_allocator]
static ALLOC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// Every option `BeaconCore::new` reads; any other key is a mistake and is refused.
const OPTIONS: &[&str] = &[
    "intakeUrl",
    "writeKey",
    "serviceName",
    "serviceVersion",
    "userId",
    "isDev",
    "attrs",
    "format",
    "headers",
    "flushIntervalMs",
    "maxBatchSize",
    "maxBatchBytes",
    "maxQueueItems",
    "maxQueueBytes",
    "requestTimeoutMs",
    "sampleRate",
    "sampleRates",
    "usageGranularityMs",
    "retry",
    "installId",
    "sessionId",
    "pagePath",
    "referrer",
    "userAgent",
    "pageExit",
    "sdk",
];

const RETRY_OPTIONS: &[&str] = &[
    "maxAttempts",
    "initialBackoffMs",
    "maxBackoffMs",
    "budgetMs",
];

/// The message of a [`ConfigError`], written without float formatting (which would cost
/// the wasm some 18 KB).
fn config_error(e: ConfigError) -> JsError {
    let msg = match e {
        ConfigError::InvalidSampleRate { what, rate } => {
            let mut r = String::new();
            crate::data::value::write_f64(&mut r, rate);
            [
                "options: sample rate for ",
                &what,
                " is ",
                &r,
                "; it must be between 0 and 1",
            ]
            .concat()
        }
        ConfigError::InvalidAttribute { key, rule } => {
            ["options: attribute \"", &key, "\": ", &rule.to_string()].concat()
        }
        ConfigError::InvalidLimit(what) => {
            ["options: ", what, " must be greater than zero"].concat()
        }
        ConfigError::NoTransport => "options: no transport".into(),
    };
    err(&msg)
}

/// A Beacon client for the browser: the wasm side of the npm package's `Beacon` class.
#[wasm_bindgen]
pub struct BeaconCore {
    client: Client,
    context: Rc<BrowserContext>,
    exit: Option<Rc<PageExit>>,
}

#[wasm_bindgen]
impl BeaconCore {
    /// Builds a client from the JSON text of the options object, registers the page-exit
    /// listeners (unless `pageExit: false`) and starts the background flushing.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &JsValue) -> Result<BeaconCore, JsError> {
        let o = Opts::new(options, "options", OPTIONS)?;
        let intake_url = o.str("intakeUrl")?.unwrap_or_default();
        if intake_url.is_empty() {
            return Err(err("options: intakeUrl is required"));
        }
        let mut http = HttpTransport::builder(intake_url);
        if let Some(k) = o.str("writeKey")? {
            http = http.write_key(k);
        }
        let format = match o.str("format")?.as_deref() {
            None | Some("ndjson") => BodyFormat::Ndjson,
            Some("json") => BodyFormat::JsonArray,
            Some(_) => return Err(err("options.format must be \"ndjson\" or \"json\"")),
        };
        http = http.format(format);
        let ms = |o: &Opts, k: &str| -> Result<Option<Duration>, JsError> {
            Ok(o.num(k)?.map(|v| Duration::from_millis(v as u64)))
        };
        if let Some(t) = ms(&o, "requestTimeoutMs")? {
            http = http.timeout(t);
        }
        for (k, v) in o.string_map("headers")? {
            http = http.header(k, v);
        }
        let http = http.build().map_err(|e| err(&["options: ", &e].concat()))?;
        let exit_target = lifecycle::ExitTarget::new(&http, format);

        let mut batch = BatchConfig {
            // Browser-sized defaults: a tab holds at most 1 000 items / 1 MiB of telemetry.
            max_queue_items: 1_000,
            max_memory_bytes: 1024 * 1024,
            max_batch_size: 100,
            max_batch_bytes: 56 * 1024,
            ..BatchConfig::default()
        };
        let count =
            |k: &str| -> Result<Option<usize>, JsError> { Ok(o.num(k)?.map(|v| v as usize)) };
        set(&mut batch.flush_interval, ms(&o, "flushIntervalMs")?);
        set(&mut batch.max_batch_size, count("maxBatchSize")?);
        set(&mut batch.max_batch_bytes, count("maxBatchBytes")?);
        set(&mut batch.max_queue_items, count("maxQueueItems")?);
        set(&mut batch.max_memory_bytes, count("maxQueueBytes")?);
        let mut retry = RetryPolicy::default();
        if let Some(r) = o.object("retry", RETRY_OPTIONS)? {
            set(
                &mut retry.max_attempts,
                r.num("maxAttempts")?.map(|v| v as u32),
            );
            set(&mut retry.initial_backoff, ms(&r, "initialBackoffMs")?);
            set(&mut retry.max_backoff, ms(&r, "maxBackoffMs")?);
            set(&mut retry.budget, ms(&r, "budgetMs")?);
        }

        let context = Rc::new(BrowserContext::detect(
            o.bool("installId")?.unwrap_or(true),
            o.bool("sessionId")?.unwrap_or(true),
            o.bool("pagePath")?.unwrap_or(true),
            o.bool("referrer")?.unwrap_or(true),
            o.bool("userAgent")?.unwrap_or(true),
        ));
        let sdk = o
            .str("sdk")?
            .unwrap_or_else(|| concat!("beacon-js/", env!("CARGO_PKG_VERSION")).into());
        let mut b = Client::builder()
            .transport(http)
            .batch_config(batch)
            .retry_policy(retry)
            .attr(crate::schema::fields::SDK, sdk);
        if let Some(v) = o.str("serviceName")? {
            b = b.service_name(v);
        }
        if let Some(v) = o.str("serviceVersion")? {
            b = b.service_version(v);
        }
        if let Some(v) = o.str("userId")? {
            b = b.user_id(v);
        }
        if let Some(v) = o.bool("isDev")? {
            b = b.is_dev(v);
        }
        if let Some(r) = o.num("sampleRate")? {
            b = b.sample_rate(r);
        }
        for (t, r) in o.num_map("sampleRates")? {
            b = b.sample_rate_for(t, r);
        }
        if let Some(g) = ms(&o, "usageGranularityMs")? {
            b = b.usage_granularity(g);
        }
        for (k, v) in context.client_attrs() {
            b = b.attr(k, v);
        }
        for (k, v) in convert::attrs(&o.get("attrs"))? {
            b = b.attr(k, v);
        }
        let client = b.build().map_err(config_error)?;
        let exit = if o.bool("pageExit")?.unwrap_or(true) {
            Some(PageExit::install(client.clone(), exit_target))
        } else {
            None
        };
        Ok(BeaconCore {
            client,
            context,
            exit,
        })
    }

    /// Records an event of any type; `attrs` is a plain object or `undefined`.
    pub fn record(
        &self,
        event_type: &str,
        event_name: &str,
        attrs: &JsValue,
    ) -> Result<(), JsError> {
        let mut attrs = convert::attrs(attrs)?;
        self.context.add_call_attrs(&mut attrs);
        self.client
            .record(event_type, event_name, &borrow_attrs(&attrs));
        Ok(())
    }

    /// Records one plain metric value (not aggregated).
    #[wasm_bindgen(js_name = recordMetric)]
    pub fn record_metric(&self, name: &str, value: f64, attrs: &JsValue) -> Result<(), JsError> {
        let attrs = convert::attrs(attrs)?;
        self.client
            .record_metric(name, value, &borrow_attrs(&attrs));
        Ok(())
    }

    /// Adds to a counter (summed per name and attributes, sent once per flush interval).
    pub fn counter(&self, name: &str, value: f64, attrs: &JsValue) -> Result<(), JsError> {
        let attrs = convert::attrs(attrs)?;
        self.client.counter(name, value, &borrow_attrs(&attrs));
        Ok(())
    }

    /// Sets a gauge (the last value per name and attributes is sent once per interval).
    pub fn gauge(&self, name: &str, value: f64, attrs: &JsValue) -> Result<(), JsError> {
        let attrs = convert::attrs(attrs)?;
        self.client.gauge(name, value, &borrow_attrs(&attrs));
        Ok(())
    }

    /// Records a histogram observation.
    pub fn histogram(&self, name: &str, value: f64, attrs: &JsValue) -> Result<(), JsError> {
        let attrs = convert::attrs(attrs)?;
        self.client.histogram(name, value, &borrow_attrs(&attrs));
        Ok(())
    }

    /// Records a counter increment as its own item.
    pub fn incr(&self, name: &str, n: f64) {
        self.client.incr(name, n as i64);
    }

    /// Records usage of a resource by a feature; `unit` is `milliseconds`, `bytes` or
    /// `bytes_sec`.
    pub fn usage(
        &self,
        resource_id: &str,
        app_feature: &str,
        amount: f64,
        unit: &str,
    ) -> Result<(), JsError> {
        let unit = UsageUnit::parse(unit).ok_or_else(|| {
            err(&[
                "usage unit \"",
                unit,
                "\" must be milliseconds, bytes or bytes_sec",
            ]
            .concat())
        })?;
        if amount.is_nan() || amount < 0.0 {
            return Err(err("usage amount must be a number >= 0"));
        }
        self.client
            .usage(resource_id, app_feature, amount as u64, unit);
        Ok(())
    }

    /// Records a log record at `level` (`trace`, `debug`, `info`, `warn`, `error`, `fatal`).
    pub fn log(&self, level: &str, message: &str, attrs: &JsValue) -> Result<(), JsError> {
        let level = Level::parse(level).ok_or_else(|| {
            err(&[
                "log level \"",
                level,
                "\" must be trace, debug, info, warn, error or fatal",
            ]
            .concat())
        })?;
        let mut attrs = convert::attrs(attrs)?;
        self.context.add_call_attrs(&mut attrs);
        self.client.log(level, message, &borrow_attrs(&attrs));
        Ok(())
    }

    /// Starts a span: a child of `parent` (a W3C `traceparent` value) when given, else of the
    /// innermost span not yet ended, else a new trace.
    #[wasm_bindgen(js_name = startSpan)]
    pub fn start_span(&self, name: &str, parent: Option<String>) -> Result<SpanHandle, JsError> {
        let span = match parent {
            Some(tp) => {
                let cx = SpanContext::from_traceparent(&tp).map_err(|e| err(&e.to_string()))?;
                self.client.span_with_parent(name, &cx)
            }
            None => self.client.span(name),
        };
        Ok(SpanHandle { span: Some(span) })
    }

    /// A child client that adds these attributes to every item and shares this pipeline.
    pub fn with(&self, attrs: &JsValue) -> Result<BeaconCore, JsError> {
        let attrs = convert::attrs(attrs)?;
        Ok(BeaconCore {
            client: self.client.with(&borrow_attrs(&attrs)),
            context: self.context.clone(),
            exit: self.exit.clone(),
        })
    }

    /// Sends everything recorded so far; rejects with the number of items still queued
    /// when some could not be delivered (they stay queued for the next try).
    pub async fn flush(&self) -> Result<(), JsError> {
        let client = self.client.clone();
        client.flush().await.map_err(|e| err(&e.to_string()))
    }

    /// Sends everything (open usage buckets included) within `timeout_ms`, then stops.
    /// Later records are ignored.
    pub async fn shutdown(&self, timeout_ms: f64) -> Result<(), JsError> {
        if let Some(exit) = &self.exit {
            exit.uninstall();
        }
        let client = self.client.clone();
        client
            .shutdown(Duration::from_millis(timeout_ms.max(0.0) as u64))
            .await
            .map_err(|e| err(&e.to_string()))
    }

    /// Drains the queue into page-exit requests now, as on `pagehide` (for single-page apps
    /// that tear down without leaving the page, and for tests). Returns the number of items
    /// handed to the browser.
    #[wasm_bindgen(js_name = pageExit)]
    pub fn page_exit(&self) -> u32 {
        match &self.exit {
            Some(exit) => exit.drain() as u32,
            None => 0,
        }
    }

    /// The batching core's counters as JSON text (see `BeaconStats` in the TypeScript types).
    #[wasm_bindgen(js_name = statsJson)]
    pub fn stats_json(&self) -> String {
        let s = self.client.stats();
        let mut out = String::with_capacity(256);
        out.push('{');
        let mut num = |k: &str, v: u64| {
            if out.len() > 1 {
                out.push(',');
            }
            crate::schema::write_json_str(&mut out, k);
            out.push(':');
            out.push_str(itoa::Buffer::new().format(v));
        };
        num("queuedItems", s.queued_items as u64);
        num("queuedBytes", s.queued_bytes as u64);
        num("inflightItems", s.inflight_items as u64);
        num("accepted", s.accepted);
        num("delivered", s.delivered);
        num("batchesSent", s.batches_sent);
        num("batchesFailed", s.batches_failed);
        num("lastFlushUnixMs", s.last_flush_unix_ms.unwrap_or(0));
        num("droppedQueueFull", s.dropped.queue_full);
        num("droppedTooLarge", s.dropped.too_large);
        num("droppedInvalid", s.dropped.invalid);
        num("droppedSampledOut", s.dropped.sampled_out);
        num("droppedDeliveryFailed", s.dropped.delivery_failed);
        out.push('}');
        out
    }

    /// The `install_id` this client stamps on items (`undefined` when switched off).
    #[wasm_bindgen(getter, js_name = installId)]
    pub fn install_id(&self) -> Option<String> {
        self.context.install_id.clone()
    }

    /// The `session_id` this client stamps on items (`undefined` when switched off).
    #[wasm_bindgen(getter, js_name = sessionId)]
    pub fn session_id(&self) -> Option<String> {
        self.context.session_id.clone()
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

/// A span in progress (see `BeaconCore::startSpan`). Sent when ended.
#[wasm_bindgen]
pub struct SpanHandle {
    span: Option<Span>,
}

#[wasm_bindgen]
impl SpanHandle {
    /// The W3C `traceparent` value, for outgoing requests (`""` once ended).
    #[wasm_bindgen(getter)]
    pub fn traceparent(&self) -> String {
        self.span
            .as_ref()
            .map(|s| s.traceparent())
            .unwrap_or_default()
    }

    /// The trace id (32 hex digits).
    #[wasm_bindgen(getter, js_name = traceId)]
    pub fn trace_id(&self) -> String {
        self.span
            .as_ref()
            .map(|s| s.context().trace_id_hex())
            .unwrap_or_default()
    }

    /// The span id (16 hex digits).
    #[wasm_bindgen(getter, js_name = spanId)]
    pub fn span_id(&self) -> String {
        self.span
            .as_ref()
            .map(|s| s.context().span_id_hex())
            .unwrap_or_default()
    }

    /// Sets attributes from a JSON object.
    #[wasm_bindgen(js_name = setAttrs)]
    pub fn set_attrs(&mut self, attrs: &JsValue) -> Result<(), JsError> {
        let attrs = convert::attrs(attrs)?;
        if let Some(span) = self.span.as_mut() {
            for (k, v) in attrs {
                span.set_attr(&k, v);
            }
        }
        Ok(())
    }

    /// Sets the status: `ok`, `error` (with `message`) or `unset`.
    #[wasm_bindgen(js_name = setStatus)]
    pub fn set_status(&mut self, status: &str, message: Option<String>) -> Result<(), JsError> {
        let status = match status {
            "ok" => SpanStatus::Ok,
            "unset" => SpanStatus::Unset,
            "error" => SpanStatus::Error(message.unwrap_or_default()),
            other => {
                return Err(err(&[
                    "span status \"",
                    other,
                    "\" must be ok, error or unset",
                ]
                .concat()))
            }
        };
        if let Some(span) = self.span.as_mut() {
            span.set_status(status);
        }
        Ok(())
    }

    /// Ends the span and records it (once; later calls do nothing).
    pub fn end(&mut self) {
        if let Some(span) = self.span.take() {
            span.end();
        }
    }
}
