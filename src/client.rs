//! The public API: [`ClientBuilder`] and [`Client`]. Children made with [`Client::with`] share
//! one pipeline; attribute precedence is client < child < call.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use crate::aggregate::{MetricKind, Metrics, UsageAggregator, DEFAULT_HISTOGRAM_BOUNDS};
use crate::batch::{BatchConfig, DropCounts, DropReason, FlushError, Pipeline, Stats};
use crate::data::item::ItemWriter;
use crate::data::value::write_f64;
use crate::data::{
    Attrs, Item, Level, MetricType, OwnedValue, SpanContext, SpanStatus, UsageUnit, Value,
};
use crate::encode::{BadKey, Ctx};
use crate::report::Reporter;
use crate::rt::{self, Duration};
use crate::schema::{self, fields, types, Rule, SchemaError};
use crate::transport::{RetryPolicy, Transport};

/// Why a client could not be built.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// No transport was given.
    NoTransport,
    /// An attribute key breaks the schema.
    InvalidAttribute {
        /// The key.
        key: String,
        /// The rule it broke.
        rule: Rule,
    },
    /// A sample rate is outside `0..=1`.
    InvalidSampleRate {
        /// What the rate is for.
        what: String,
        /// The rate given.
        rate: f64,
    },
    /// A batching limit is zero or inconsistent.
    InvalidLimit(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoTransport => {
                f.write_str("no transport: add one with ClientBuilder::transport")
            }
            ConfigError::InvalidAttribute { key, rule } => write!(f, "attribute {key:?}: {rule}"),
            ConfigError::InvalidSampleRate { what, rate } => {
                write!(
                    f,
                    "sample rate for {what} is {rate}; it must be between 0 and 1"
                )
            }
            ConfigError::InvalidLimit(what) => {
                write!(f, "batching limit {what} must be greater than zero")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<BadKey> for ConfigError {
    fn from(b: BadKey) -> Self {
        ConfigError::InvalidAttribute {
            key: b.key,
            rule: b.rule,
        }
    }
}

/// Why [`Client::record_raw`] refused an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The item breaks the schema; the message names the field and the rule.
    Invalid(SchemaError),
    /// The client is shut down.
    Closed,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Invalid(e) => e.fmt(f),
            RecordError::Closed => f.write_str("the client is shut down"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Builds a [`Client`].
pub struct ClientBuilder {
    context: Vec<(Box<str>, OwnedValue)>,
    attrs: Vec<(Box<str>, OwnedValue)>,
    batch: BatchConfig,
    retry: RetryPolicy,
    sample_rate: f64,
    sample_rates: Vec<(String, f64)>,
    transports: Vec<Box<dyn Transport>>,
    disabled_timers: Vec<String>,
    histogram_bounds: Vec<(String, Arc<[f64]>)>,
    usage_granularity: Duration,
    shutdown_timeout: Duration,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            context: vec![(
                fields::SDK.into(),
                Value::from(concat!("beacon-rust/", env!("CARGO_PKG_VERSION"))),
            )],
            attrs: Vec::new(),
            batch: BatchConfig::default(),
            retry: RetryPolicy::default(),
            sample_rate: 1.0,
            sample_rates: Vec::new(),
            transports: Vec::new(),
            disabled_timers: Vec::new(),
            histogram_bounds: Vec::new(),
            usage_granularity: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl ClientBuilder {
    /// Sets one of Beacon's own attributes (a later value replaces an earlier one when the
    /// context is built).
    fn set(mut self, key: &'static str, value: OwnedValue) -> Self {
        self.context.push((key.into(), value));
        self
    }

    /// `service_name` on every item.
    pub fn service_name(self, name: impl Into<String>) -> Self {
        self.set(fields::SERVICE_NAME, Value::from(name.into()))
    }

    /// `service_version` on every item.
    pub fn service_version(self, version: impl Into<String>) -> Self {
        self.set(fields::SERVICE_VERSION, Value::from(version.into()))
    }

    /// `service_commit` on every item.
    pub fn service_commit(self, commit: impl Into<String>) -> Self {
        self.set(fields::SERVICE_COMMIT, Value::from(commit.into()))
    }

    /// `install_id` on every item.
    pub fn install_id(self, id: impl Into<String>) -> Self {
        self.set(fields::INSTALL_ID, Value::from(id.into()))
    }

    /// `user_id` on every item.
    pub fn user_id(self, id: impl Into<String>) -> Self {
        self.set(fields::USER_ID, Value::from(id.into()))
    }

    /// `is_dev` on every item.
    pub fn is_dev(self, is_dev: bool) -> Self {
        self.set(fields::IS_DEV, Value::Bool(is_dev))
    }

    /// A global attribute on every item.
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<Value<'static>>) -> Self {
        self.attrs.push((key.into().into_boxed_str(), value.into()));
        self
    }

    /// Batching limits and timing.
    pub fn batch_config(mut self, cfg: BatchConfig) -> Self {
        self.batch = cfg;
        self
    }

    /// The retry policy shared by the transports.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Keeps this fraction of events, logs, plain metrics and root spans (default 1).
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = rate;
        self
    }

    /// Keeps this fraction of items of one `event_type` (overrides [`Self::sample_rate`]).
    pub fn sample_rate_for(mut self, event_type: impl Into<String>, rate: f64) -> Self {
        self.sample_rates.push((event_type.into(), rate));
        self
    }

    /// Adds a transport; with several, every batch goes to each.
    pub fn transport(mut self, t: impl Transport) -> Self {
        self.transports.push(Box::new(t));
        self
    }

    /// Disables timers by name; `"*"` disables all.
    pub fn disable_timer(mut self, name: impl Into<String>) -> Self {
        self.disabled_timers.push(name.into());
        self
    }

    /// Histogram bucket boundaries for one metric name (upper bounds, inclusive).
    pub fn histogram_bounds(mut self, name: impl Into<String>, bounds: &[f64]) -> Self {
        let mut b: Vec<f64> = bounds.iter().copied().filter(|x| x.is_finite()).collect();
        b.sort_by(|a, b| a.total_cmp(b));
        b.dedup();
        self.histogram_bounds.push((name.into(), b.into()));
        self
    }

    /// Usage bucket length (default 60 s).
    pub fn usage_granularity(mut self, g: Duration) -> Self {
        self.usage_granularity = g;
        self
    }

    /// How long dropping the last handle waits for the final flush (default 5 s).
    pub fn shutdown_timeout(mut self, t: Duration) -> Self {
        self.shutdown_timeout = t;
        self
    }

    /// Builds the client and starts its background tasks.
    pub fn build(self) -> Result<Client, ConfigError> {
        if self.transports.is_empty() {
            return Err(ConfigError::NoTransport);
        }
        let b = &self.batch;
        for (v, what) in [
            (b.max_queue_items, "max_queue_items"),
            (b.max_memory_bytes, "max_memory_bytes"),
            (b.max_batch_size, "max_batch_size"),
            (b.max_batch_bytes, "max_batch_bytes"),
            (b.max_item_bytes, "max_item_bytes"),
            (b.max_concurrent_sends, "max_concurrent_sends"),
        ] {
            if v == 0 {
                return Err(ConfigError::InvalidLimit(what));
            }
        }
        if b.flush_interval.is_zero() {
            return Err(ConfigError::InvalidLimit("flush_interval"));
        }
        let rate_ok = |r: f64| (0.0..=1.0).contains(&r);
        if !rate_ok(self.sample_rate) {
            return Err(ConfigError::InvalidSampleRate {
                what: "all items".into(),
                rate: self.sample_rate,
            });
        }
        for (t, r) in &self.sample_rates {
            if !rate_ok(*r) {
                return Err(ConfigError::InvalidSampleRate {
                    what: ["event_type ", t].concat(),
                    rate: *r,
                });
            }
        }
        // Natively this notes the clocks for the time-stamp counter's calibration
        // (see `rt::mono_us`), here rather than on the first recording call.
        let _ = rt::mono_us();
        let mut all = self.context;
        all.extend(self.attrs);
        let ctx = Arc::new(Ctx::new(all)?);
        let report_ctx = ctx.clone();
        let report: crate::batch::ReportBuilder =
            Box::new(move |counts: &DropCounts| client_report(&report_ctx, counts));
        let pipeline = Pipeline::new(self.batch, self.transports, self.retry, report);
        let bounds = self.histogram_bounds;
        let default_bounds: Arc<[f64]> = Arc::from(&DEFAULT_HISTOGRAM_BOUNDS[..]);
        let metrics = Arc::new(Metrics::new(Box::new(move |name| {
            bounds
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| default_bounds.clone())
        })));
        let usage = Arc::new(UsageAggregator::new(
            self.usage_granularity.as_millis() as u64,
            ctx.clone(),
        ));
        pipeline.add_collector(metrics.clone());
        pipeline.add_collector(usage.clone());
        rt::spawn(pipeline.clone().run_ticker());
        if rt::CAN_BLOCK {
            rt::spawn(pipeline.clone().run_polling_flusher());
        } else {
            rt::spawn(pipeline.clone().run_flusher());
        }
        let shared = Arc::new(Shared {
            pipeline,
            metrics,
            usage,
            sample_rate: self.sample_rate,
            sample_rates: self.sample_rates,
            disabled_timers: self.disabled_timers,
            shutdown_timeout: self.shutdown_timeout,
        });
        Ok(Client {
            inner: Arc::new(Inner {
                handle: Some(Arc::new(Handle { shared })),
                ctx,
            }),
        })
    }
}

fn client_report(ctx: &Ctx, counts: &DropCounts) -> Item {
    let mut w = ctx.begin_plain(types::CLIENT_REPORT, "dropped", rt::now_unix_ms(), 160);
    for r in DropReason::ALL {
        w.field(r.field())
            .push_str(itoa::Buffer::new().format(counts.get(r)));
    }
    w.finish()
}

struct Shared {
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    usage: Arc<UsageAggregator>,
    sample_rate: f64,
    sample_rates: Vec<(String, f64)>,
    disabled_timers: Vec<String>,
    shutdown_timeout: Duration,
}

impl Shared {
    #[inline]
    fn rate_for(&self, ty: &str) -> f64 {
        if self.sample_rates.is_empty() {
            return self.sample_rate;
        }
        self.sample_rates
            .iter()
            .find(|(t, _)| t == ty)
            .map_or(self.sample_rate, |(_, r)| *r)
    }

    #[inline]
    fn sampled_in(&self, ty: &str) -> bool {
        let rate = self.rate_for(ty);
        if rate >= 1.0 || crate::random::keep(rate) {
            true
        } else {
            self.pipeline.drop_items(DropReason::SampledOut, 1);
            false
        }
    }
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let pipeline = self.shared.pipeline.clone();
        if pipeline.is_closed() {
            return;
        }
        let timeout = self.shared.shutdown_timeout;
        let done = rt::block_on_timeout(async move { pipeline.shutdown().await }, timeout);
        // Timed out: stop the background tasks anyway. Where nothing can block (the browser)
        // the shutdown runs on the event loop and closes the pipeline itself once it has
        // flushed; closing it now would turn away the open aggregates it is about to emit.
        if done.is_none() && rt::CAN_BLOCK {
            self.shared.pipeline.close();
        }
    }
}

/// The telemetry client. Cheap to clone; clones and children share one pipeline. Dropping the
/// last handle flushes (natively, waiting at most the shutdown timeout).
///
/// Recording never panics and never blocks on I/O; an item that cannot be recorded is counted
/// by reason in [`Client::stats`] and in the next `client_report` item.
#[derive(Clone)]
pub struct Client {
    /// One reference count for the handle and the context, so a copy of a client (a child's,
    /// a detached span's) costs one atomic increment.
    inner: Arc<Inner>,
}

struct Inner {
    handle: Option<Arc<Handle>>,
    ctx: Arc<Ctx>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("noop", &self.inner.handle.is_none())
            .field("attrs", &self.inner.ctx.attrs.len())
            .finish()
    }
}

thread_local! {
    static ACTIVE: RefCell<Vec<Ids>> = const { RefCell::new(Vec::new()) };
}

impl Client {
    /// Starts building a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client that records nothing and sends nothing.
    pub fn noop() -> Client {
        Client {
            inner: Arc::new(Inner {
                handle: None,
                ctx: Arc::new(Ctx::default()),
            }),
        }
    }

    #[inline]
    fn shared(&self) -> Option<&Shared> {
        self.inner.handle.as_deref().map(|h| &*h.shared)
    }

    /// A child that adds `attrs` to every item and shares this client's pipeline.
    /// Invalid keys are left out (and counted as one invalid item).
    pub fn with(&self, attrs: &Attrs<'_>) -> Client {
        if attrs.iter().any(|(k, _)| schema::check_key(k).is_err()) {
            if let Some(s) = self.shared() {
                s.pipeline.drop_items(DropReason::Invalid, 1);
            }
        }
        Client {
            inner: Arc::new(Inner {
                handle: self.inner.handle.clone(),
                ctx: Arc::new(self.inner.ctx.with(attrs)),
            }),
        }
    }

    /// Encodes and queues one item; `extra` writes the type's own fields.
    #[inline]
    fn emit(
        &self,
        ty: &str,
        name: &str,
        time_ms: u64,
        attrs: &Attrs<'_>,
        extra: impl FnOnce(&mut crate::data::item::ItemWriter),
    ) {
        self.emit_sized(ty, name, time_ms, attrs, 48, extra)
    }

    /// Like [`Client::emit`], reserving `hint` bytes for the fields `extra` writes.
    #[inline]
    fn emit_sized(
        &self,
        ty: &str,
        name: &str,
        time_ms: u64,
        attrs: &Attrs<'_>,
        hint: usize,
        extra: impl FnOnce(&mut crate::data::item::ItemWriter),
    ) {
        let Some(s) = self.shared() else { return };
        match self.inner.ctx.begin_sized(ty, name, time_ms, attrs, hint) {
            Ok(mut w) => {
                extra(&mut w);
                s.pipeline.push(w.finish());
            }
            Err(_) => s.pipeline.drop_items(DropReason::Invalid, 1),
        }
    }

    /// Records an event of any type (`behavioral` for user actions).
    #[inline]
    pub fn record(&self, event_type: &str, event_name: &str, attrs: &Attrs<'_>) {
        let Some(s) = self.shared() else { return };
        if schema::check_type(event_type).is_err() || schema::check_name(event_name).is_err() {
            s.pipeline.drop_items(DropReason::Invalid, 1);
            return;
        }
        if !s.sampled_in(event_type) {
            return;
        }
        self.emit(event_type, event_name, rt::now_unix_ms(), attrs, |_| {});
    }

    /// Validates a raw event (a JSON object with the required fields, as proxies receive it)
    /// and queues it unchanged but for canonical encoding; the client's attributes are not
    /// added. Returns an error naming the field and the rule when it breaks the schema.
    pub fn record_raw(&self, raw: &serde_json::Value) -> Result<(), RecordError> {
        let Some(s) = self.shared() else {
            return Err(RecordError::Closed);
        };
        if s.pipeline.is_closed() {
            return Err(RecordError::Closed);
        }
        let obj = raw
            .as_object()
            .ok_or(RecordError::Invalid(SchemaError::NotAnObject))?;
        let json =
            schema::validate_object(obj, s.pipeline.config().max_item_bytes).map_err(|e| {
                s.pipeline.drop_items(DropReason::Invalid, 1);
                RecordError::Invalid(e)
            })?;
        s.pipeline.push(Item::from_canonical(json));
        Ok(())
    }

    /// Records one plain metric value (as Rill's `RecordMetric`), not aggregated.
    pub fn record_metric(&self, name: &str, value: f64, attrs: &Attrs<'_>) {
        let Some(s) = self.shared() else { return };
        if schema::check_name(name).is_err() {
            s.pipeline.drop_items(DropReason::Invalid, 1);
            return;
        }
        if !s.sampled_in(types::METRIC) {
            return;
        }
        self.emit(types::METRIC, name, rt::now_unix_ms(), attrs, |w| {
            w.word(fields::METRIC_TYPE, MetricType::Value.as_str());
            write_f64(w.field(fields::VALUE), value);
        });
    }

    #[inline]
    fn observe(&self, kind: MetricKind, name: &str, value: f64, attrs: &Attrs<'_>) {
        let Some(s) = self.shared() else { return };
        if !s.metrics.observe(kind, name, &self.inner.ctx, attrs, value) {
            s.pipeline.drop_items(DropReason::Invalid, 1);
        }
    }

    /// Adds to a counter; summed per (name, attributes) and emitted once per flush interval.
    #[inline]
    pub fn counter(&self, name: &str, value: f64, attrs: &Attrs<'_>) {
        self.observe(MetricKind::Counter, name, value, attrs);
    }

    /// Sets a gauge; the last value per (name, attributes) is emitted once per flush interval.
    #[inline]
    pub fn gauge(&self, name: &str, value: f64, attrs: &Attrs<'_>) {
        self.observe(MetricKind::Gauge, name, value, attrs);
    }

    /// Records a histogram observation; count, sum, min, max and bucket counts per
    /// (name, attributes) are emitted once per flush interval.
    #[inline]
    pub fn histogram(&self, name: &str, value: f64, attrs: &Attrs<'_>) {
        self.observe(MetricKind::Histogram, name, value, attrs);
    }

    /// Records usage of a shared resource by a feature; summed per bucket and emitted when
    /// the bucket closes.
    #[inline]
    pub fn usage(&self, resource_id: &str, app_feature: &str, amount: u64, unit: UsageUnit) {
        let Some(s) = self.shared() else { return };
        s.usage.record(
            resource_id,
            app_feature,
            amount,
            unit,
            rt::now_unix_ms_coarse(),
        );
    }

    /// The usage bucket length in milliseconds.
    pub fn usage_granularity_ms(&self) -> u64 {
        self.shared().map_or(60_000, |s| s.usage.granularity_ms())
    }

    /// Records a log record, with the active span's trace and span id when there is one.
    pub fn log(&self, level: Level, message: &str, fields_: &Attrs<'_>) {
        let Some(s) = self.shared() else { return };
        if !s.sampled_in(types::LOG) {
            return;
        }
        let active = Self::active();
        self.emit_sized(
            types::LOG,
            level.as_str(),
            rt::now_unix_ms(),
            fields_,
            96 + message.len(),
            |w| {
                w.word(fields::LEVEL, level.as_str());
                w.str(fields::MESSAGE, message);
                if let Some(ids) = active {
                    w.hex(fields::TRACE_ID, ids.trace, 16);
                    w.hex(fields::SPAN_ID, u128::from(ids.span), 8);
                }
            },
        );
    }

    /// The innermost live span on this thread, if any.
    pub fn current_span() -> Option<SpanContext> {
        Self::active().map(Ids::context)
    }

    /// The innermost live span's ids on this thread, if any.
    #[inline]
    fn active() -> Option<Ids> {
        // (`try_with`: during a thread's teardown the stack may be gone; never panic.)
        ACTIVE
            .try_with(|a| a.borrow().last().copied())
            .ok()
            .flatten()
    }

    /// Starts a span, a child of this thread's active span if there is one. It becomes the
    /// active span on this thread until it ends (on [`Span::end`] or drop).
    ///
    /// The span borrows the client; [`Span::detach`] makes one that can outlive the borrow
    /// and move into a spawned task or another thread.
    pub fn span(&self, name: &str) -> Span<'_> {
        self.start_span(Cow::Borrowed(self), name, Self::active())
    }

    /// Starts a span continuing a remote trace (e.g. from a `traceparent` header).
    pub fn span_with_parent(&self, name: &str, parent: &SpanContext) -> Span<'_> {
        self.start_span(Cow::Borrowed(self), name, Some(Ids::of(parent)))
    }

    /// Starts a span that owns a handle to its client (the browser's span handles outlive
    /// any borrow).
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn span_owned(&self, name: &str, parent: Option<&SpanContext>) -> Span<'static> {
        let parent = parent.map(Ids::of).or_else(Self::active);
        self.start_span(Cow::Owned(self.clone()), name, parent)
    }

    fn start_span<'a>(&self, client: Cow<'a, Client>, name: &str, parent: Option<Ids>) -> Span<'a> {
        // The parent's trace, or a new one (sampled at the client's span rate) for a root.
        let cx = match (parent, self.shared()) {
            (Some(p), s) => Ids {
                trace: p.trace,
                span: crate::random::span_id(),
                sampled: p.sampled && s.is_some(),
            },
            (None, s) => {
                let (trace, span) = crate::random::trace_and_span_id();
                let sampled = s.is_some_and(|s| {
                    let r = s.rate_for(types::SPAN);
                    r >= 1.0 || crate::random::keep(r)
                });
                Ids {
                    trace,
                    span,
                    sampled,
                }
            }
        };
        let _ = ACTIVE.try_with(|a| a.borrow_mut().push(cx));
        let invalid = schema::check_name(name).is_err();
        let (now_ms, start_us) = rt::now_unix_ms_and_mono_us();
        // Built as the return value, so it is written where the caller keeps it, and the item
        // is written in it: built apart and moved in, its fields were copied with wide loads
        // that waited for the narrower stores that had just written them.
        let mut span = Span {
            client,
            item: None,
            trace: [cx.trace as u64, (cx.trace >> 64) as u64],
            span_id: cx.span,
            start_us,
            overridden: Overridden::default(),
            status_message: None,
            status: SpanStatus::Unset.code(),
            sampled: cx.sampled,
            invalid,
        };
        // A sampled span is encoded as it goes: the envelope and ids now, the attributes as
        // they are set, the client's attributes, duration and status when it ends.
        if cx.sampled && !invalid {
            let w = span
                .item
                .insert(self.inner.ctx.begin_bare(types::SPAN, name, now_ms, 256));
            w.hex(fields::TRACE_ID, cx.trace, 16);
            w.hex(fields::SPAN_ID, u128::from(cx.span), 8);
            if let Some(p) = parent {
                w.hex(fields::PARENT_SPAN_ID, u128::from(p.span), 8);
            }
        }
        span
    }

    /// Starts a timer; when the guard drops, the elapsed milliseconds are recorded as a
    /// `timer` metric (unless the timer is disabled).
    pub fn timer(&self, name: &str) -> Timer {
        self.timer_sampled(name, 1.0)
    }

    /// Starts a timer recorded with probability `rate`, decided now and written into the item.
    pub fn timer_sampled(&self, name: &str, rate: f64) -> Timer {
        let enabled = match self.shared() {
            None => false,
            Some(s) => !s.disabled_timers.iter().any(|d| d == "*" || d == name),
        };
        let keep = enabled && crate::random::keep(rate);
        if enabled && !keep {
            if let Some(s) = self.shared() {
                s.pipeline.drop_items(DropReason::SampledOut, 1);
            }
        }
        Timer {
            client: if keep { Some(self.clone()) } else { None },
            name: name.into(),
            rate,
            start_us: rt::mono_us(),
        }
    }

    /// Times a closure (see [`Client::timer`]) and returns its result.
    pub fn time<T>(&self, name: &str, f: impl FnOnce() -> T) -> T {
        let _t = self.timer(name);
        f()
    }

    /// Records a counter increment as its own item (Metlog's `incr`).
    pub fn incr(&self, name: &str, n: i64) {
        self.incr_sampled(name, n, 1.0)
    }

    /// Records a counter increment with probability `rate`, written into the item.
    pub fn incr_sampled(&self, name: &str, n: i64, rate: f64) {
        let Some(s) = self.shared() else { return };
        if !crate::random::keep(rate) {
            s.pipeline.drop_items(DropReason::SampledOut, 1);
            return;
        }
        self.emit(types::METRIC, name, rt::now_unix_ms(), &[], |w| {
            w.word(fields::METRIC_TYPE, MetricType::Incr.as_str());
            w.field(fields::VALUE)
                .push_str(itoa::Buffer::new().format(n));
            write_f64(w.field(fields::RATE), rate);
        });
    }

    /// Starts a roll-up reporter on this client's pipeline.
    pub fn start_reporter(&self, reporter: Reporter) {
        let Some(s) = self.shared() else { return };
        rt::spawn(reporter.start(s.pipeline.clone(), self.inner.ctx.clone()));
    }

    /// Sends everything recorded so far (aggregates included) and waits for it. Items that
    /// could not be delivered stay queued and the error says how many.
    pub async fn flush(&self) -> Result<(), FlushError> {
        let Some(s) = self.shared() else {
            return Err(FlushError::Closed);
        };
        if s.pipeline.is_closed() {
            return Err(FlushError::Closed);
        }
        let pipeline = s.pipeline.clone();
        rt::run(async move { pipeline.flush(false).await })
            .await
            .unwrap_or(Err(FlushError::Closed))
    }

    /// Like [`Client::flush`], blocking the calling thread up to `timeout`. In the browser,
    /// which must never block, it returns [`FlushError::WouldBlock`] at once.
    pub fn flush_blocking(&self, timeout: Duration) -> Result<(), FlushError> {
        if !rt::CAN_BLOCK {
            return Err(FlushError::WouldBlock);
        }
        let Some(s) = self.shared() else {
            return Err(FlushError::Closed);
        };
        if s.pipeline.is_closed() {
            return Err(FlushError::Closed);
        }
        let pipeline = s.pipeline.clone();
        rt::block_on_timeout(async move { pipeline.flush(false).await }, timeout)
            .unwrap_or(Err(FlushError::Timeout))
    }

    /// Emits everything (open usage buckets included), delivers it within `timeout`, and stops
    /// the background tasks. Later records are ignored.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), FlushError> {
        let Some(s) = self.shared() else {
            return Err(FlushError::Closed);
        };
        if s.pipeline.is_closed() {
            return Err(FlushError::Closed);
        }
        let pipeline = s.pipeline.clone();
        rt::run(async move {
            let work = std::pin::pin!(pipeline.shutdown());
            match futures_util::future::select(work, std::pin::pin!(rt::sleep(timeout))).await {
                futures_util::future::Either::Left((r, _)) => r,
                futures_util::future::Either::Right(_) => {
                    pipeline.close();
                    Err(FlushError::Timeout)
                }
            }
        })
        .await
        .unwrap_or(Err(FlushError::Closed))
    }

    /// Like [`Client::shutdown`], blocking the calling thread (natively only).
    pub fn shutdown_blocking(&self, timeout: Duration) -> Result<(), FlushError> {
        if !rt::CAN_BLOCK {
            return Err(FlushError::WouldBlock);
        }
        let this = self.clone();
        rt::block_on_timeout(
            async move { this.shutdown(timeout).await },
            timeout + Duration::from_millis(100),
        )
        .unwrap_or(Err(FlushError::Timeout))
    }

    /// The batching core's counters.
    pub fn stats(&self) -> Stats {
        self.shared()
            .map(|s| s.pipeline.stats())
            .unwrap_or_default()
    }

    /// Page exit (the browser's `pagehide`): hands the open aggregates (metrics, and usage
    /// buckets when `final_`) to the queue now, synchronously. Not part of the stable API.
    #[doc(hidden)]
    pub fn collect_now(&self, final_: bool) {
        if let Some(s) = self.shared() {
            s.pipeline.collect(final_);
        }
    }

    /// Page exit: synchronously takes queued items (oldest first) that fit in `max_bytes`,
    /// for one request that must leave before the page goes away. They count as in flight
    /// until [`Client::settle_exit`]. Not part of the stable API.
    #[doc(hidden)]
    pub fn take_for_exit(&self, max_bytes: usize) -> Option<crate::batch::ExitBatch> {
        self.shared()?.pipeline.take_for_exit(max_bytes)
    }

    /// Page exit: settles what [`Client::take_for_exit`] took: delivered, or back to the
    /// front of the queue. Not part of the stable API.
    #[doc(hidden)]
    pub fn settle_exit(&self, exit: crate::batch::ExitBatch, delivered: bool) {
        if let Some(s) = self.shared() {
            s.pipeline.settle_exit(exit, delivered);
        }
    }
}

/// A span's ids as numbers (a [`SpanContext`]'s bytes, little-endian): kept and passed in
/// registers, they are stored whole, where the byte arrays were stored in pieces that the next
/// copy had to wait for.
#[derive(Debug, Clone, Copy)]
struct Ids {
    trace: u128,
    span: u64,
    sampled: bool,
}

impl Ids {
    fn of(cx: &SpanContext) -> Ids {
        Ids {
            trace: u128::from_le_bytes(cx.trace_id),
            span: u64::from_le_bytes(cx.span_id),
            sampled: cx.sampled,
        }
    }

    fn context(self) -> SpanContext {
        SpanContext {
            trace_id: self.trace.to_le_bytes(),
            span_id: self.span.to_le_bytes(),
            sampled: self.sampled,
        }
    }
}

/// The indexes of a client's attributes that a span's own attributes replace: a bit each for
/// the first 64, a list for the rest (a client with that many attributes is rare).
#[derive(Default)]
struct Overridden {
    first: u64,
    // Boxed: one pointer in the span instead of a vector's three words.
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<usize>>>,
}

impl Overridden {
    fn insert(&mut self, i: usize) {
        if i < 64 {
            self.first |= 1 << i;
        } else {
            let rest = self.rest.get_or_insert_with(Default::default);
            if !rest.contains(&i) {
                rest.push(i);
            }
        }
    }

    fn contains(&self, i: usize) -> bool {
        if i < 64 {
            self.first >> i & 1 == 1
        } else {
            self.rest.as_ref().is_some_and(|rest| rest.contains(&i))
        }
    }

    fn is_empty(&self) -> bool {
        self.first == 0 && self.rest.is_none()
    }
}

// See `Span`'s doc comment.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Span<'static>>() <= 128);

/// A span in progress. Ends (and is emitted) on [`Span::end`] or when dropped.
///
/// It borrows the client it was started from, like a lock guard: counting a reference to
/// the client (two atomic instructions) was about a tenth of a span's cost (`record_probe
/// span`: 275 against 250 ns of CPU per span, six interleaved runs each). A span that must
/// outlive the borrow or end on another thread, e.g. one moved into a spawned task, is made
/// with [`Span::detach`]. (A span that ends on another thread without being detached, e.g.
/// one borrowed from a `static` client, stays on its first thread's stack of active spans,
/// and that thread's later spans become its children.)
///
/// Its fields are kept within 128 bytes: moving a larger span (into [`Span::end`], out of
/// [`Client::span`]) was a call to `memcpy`.
pub struct Span<'a> {
    client: Cow<'a, Client>,
    /// The item being written; `None` when the span is not sampled or its name is invalid.
    item: Option<ItemWriter>,
    /// The trace id's low and high 64 bits.
    trace: [u64; 2],
    span_id: u64,
    /// When it started, on [`rt::mono_us`]'s clock.
    start_us: u64,
    overridden: Overridden,
    /// The message of an error status (boxed: one pointer in the span).
    #[allow(clippy::box_collection)]
    status_message: Option<Box<String>>,
    /// [`SpanStatus::code`].
    status: u8,
    sampled: bool,
    invalid: bool,
}

impl Span<'_> {
    /// Detaches the span from the client's borrow and from this thread, so it can move into
    /// a spawned task or another thread and end there: it gets its own handle to the client,
    /// and stops being this thread's active span (spans started on this thread from now on
    /// are not its children, and logs do not carry its ids). It stays the same span: same
    /// ids, attributes and start time. To start children of it elsewhere, use
    /// [`Client::span_with_parent`] with its [`Span::context`].
    pub fn detach(self) -> Span<'static> {
        let this = std::mem::ManuallyDrop::new(self);
        leave_active(this.span_id);
        // SAFETY: `this` is never dropped, so each field is moved out exactly once (read
        // here), and the span's drop (which would end it) does not run for the old value.
        unsafe {
            Span {
                client: Cow::Owned(std::ptr::read(&this.client).into_owned()),
                item: std::ptr::read(&this.item),
                trace: this.trace,
                span_id: this.span_id,
                start_us: this.start_us,
                overridden: std::ptr::read(&this.overridden),
                status_message: std::ptr::read(&this.status_message),
                status: this.status,
                sampled: this.sampled,
                invalid: this.invalid,
            }
        }
    }

    fn ids(&self) -> Ids {
        Ids {
            trace: u128::from(self.trace[1]) << 64 | u128::from(self.trace[0]),
            span: self.span_id,
            sampled: self.sampled,
        }
    }

    /// The span's context (for `traceparent` propagation).
    pub fn context(&self) -> SpanContext {
        self.ids().context()
    }

    /// The W3C `traceparent` header value for outgoing requests.
    pub fn traceparent(&self) -> String {
        self.context().traceparent()
    }

    /// Sets an attribute. A key set again is written again: JSON readers, the intake's
    /// validation included, take the last value. (Finding and removing the earlier pair made
    /// a span with twelve attributes cost 74 % more instructions, `record_probe span12`:
    /// searches for keys that a small filter could not tell apart. The npm package's spans
    /// keep one value per key before they reach the item.)
    pub fn set_attr<'a>(&mut self, key: &str, value: impl Into<Value<'a>>) -> &mut Self {
        if schema::check_key(key).is_err() || is_span_field(key) {
            self.invalid = true;
            return self;
        }
        if let Some(w) = &mut self.item {
            if let Some(i) = self.client.inner.ctx.index_of(key) {
                self.overridden.insert(i);
            }
            w.attr(key, &value.into());
        }
        self
    }

    /// Sets the status.
    pub fn set_status(&mut self, status: SpanStatus) -> &mut Self {
        self.status = status.code();
        self.status_message = match status {
            SpanStatus::Error(m) => Some(Box::new(m)),
            _ => None,
        };
        self
    }

    /// Ends the span now.
    // Dropping it ends it (see `Drop`). Inlined, and without a body that uses `self`, so the
    // span is not copied into the call first.
    #[inline]
    pub fn end(self) {}

    /// Takes the span off this thread's stack and queues its item (from `Drop`, so once).
    fn finish(&mut self) {
        leave_active(self.span_id);
        let Some(s) = self.client.shared() else {
            return;
        };
        if self.invalid {
            s.pipeline.drop_items(DropReason::Invalid, 1);
            return;
        }
        let Some(mut w) = self.item.take() else {
            s.pipeline.drop_items(DropReason::SampledOut, 1);
            return;
        };
        let duration_us = rt::mono_us().saturating_sub(self.start_us);
        let overridden = &self.overridden;
        self.client
            .inner
            .ctx
            .write_attrs(&mut w, !overridden.is_empty(), |i, _| {
                overridden.contains(i)
            });
        w.ms_from_us(fields::DURATION_MS, duration_us);
        w.word(fields::STATUS, SpanStatus::name_of(self.status));
        if let Some(m) = &self.status_message {
            w.str(fields::STATUS_MESSAGE, m);
        }
        s.pipeline.push(w.finish());
    }
}

/// Takes the span `id` off this thread's stack of active spans.
#[inline]
fn leave_active(id: u64) {
    let _ = ACTIVE.try_with(|a| {
        let mut a = a.borrow_mut();
        // Usually the innermost span ends first.
        if a.last().is_some_and(|c| c.span == id) {
            a.pop();
        } else if let Some(pos) = a.iter().rposition(|c| c.span == id) {
            a.remove(pos);
        }
    });
}

/// The fields a span writes itself, which its attributes may not set.
const SPAN_FIELDS: [&str; 6] = [
    fields::TRACE_ID,
    fields::SPAN_ID,
    fields::PARENT_SPAN_ID,
    fields::DURATION_MS,
    fields::STATUS,
    fields::STATUS_MESSAGE,
];

/// Bit `n` is set when a span field is `n` bytes long.
const SPAN_FIELD_LENS: u64 = {
    let (mut m, mut i) = (0u64, 0);
    while i < SPAN_FIELDS.len() {
        m |= 1 << SPAN_FIELDS[i].len();
        i += 1;
    }
    m
};

#[inline]
fn is_span_field(key: &str) -> bool {
    // The lengths first: most keys are none of these.
    key.len() < 64 && SPAN_FIELD_LENS >> key.len() & 1 == 1 && SPAN_FIELDS.contains(&key)
}

impl Drop for Span<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for Span<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.item.as_ref().map(ItemWriter::event_name);
        f.debug_struct("Span")
            .field("name", &name.as_deref().unwrap_or(""))
            .field("traceparent", &self.traceparent())
            .finish()
    }
}

/// A running timer; records on drop.
pub struct Timer {
    client: Option<Client>,
    name: String,
    rate: f64,
    start_us: u64,
}

impl Timer {
    /// Stops the timer without recording.
    pub fn cancel(mut self) {
        self.client = None;
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let us = rt::mono_us().saturating_sub(self.start_us);
        let rate = self.rate;
        client.emit(types::METRIC, &self.name, rt::now_unix_ms(), &[], |w| {
            w.word(fields::METRIC_TYPE, MetricType::Timer.as_str());
            w.ms_from_us(fields::VALUE, us);
            w.word(fields::UNIT, "ms");
            write_f64(w.field(fields::RATE), rate);
        });
    }
}
