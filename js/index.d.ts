// Types of the npm package. The event types mirror the shared schema v1 (src/schema.rs and
// schema/beacon-event.schema.json); js/test/types.test.mjs type-checks the Rust tests'
// fixtures (tests/fixtures/valid.json) against them.

/** Where to find `beacon_core_bg.wasm`: a URL, path, `Response`, bytes or compiled module. */
export type WasmSource = string | URL | Response | BufferSource | WebAssembly.Module;

/** An attribute value. Nested objects and arrays are sent as their JSON text. */
export type AttrValue = string | number | boolean | null;

/** Attributes: flat keys (1–128 chars, not starting with `event_`) to values. */
export type Attrs = Record<string, AttrValue | object | undefined>;

/** Log levels. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** Units of usage accounting. */
export type UsageUnit = 'milliseconds' | 'bytes' | 'bytes_sec';

/** Span statuses. */
export type SpanStatus = 'unset' | 'ok' | 'error';

/** The options of `init()` / `new Beacon()`. Only `intakeUrl` is required. */
export interface BeaconOptions {
  /** The intake's batch endpoint, e.g. `https://intake.example.com/v1/events`. */
  intakeUrl: string;
  /** A public write key; sent as `?key=` in the URL (page-exit requests cannot set headers). */
  writeKey?: string;
  /** `service_name` on every item. */
  serviceName?: string;
  /** `service_version` on every item. */
  serviceVersion?: string;
  /** `user_id` on every item. */
  userId?: string;
  /** `is_dev` on every item. */
  isDev?: boolean;
  /** Attributes on every item. */
  attrs?: Attrs;
  /** Body format of normal flushes: NDJSON (default) or one JSON array. */
  format?: 'ndjson' | 'json';
  /** Extra headers on normal flushes (not on page-exit requests, which cannot carry them). */
  headers?: Record<string, string>;
  /** How often the queue is flushed and aggregates are emitted (default 5000 ms). */
  flushIntervalMs?: number;
  /** Most items in one request (default 100). */
  maxBatchSize?: number;
  /** Most body bytes in one request (default 56 KiB: fits the keepalive budget). */
  maxBatchBytes?: number;
  /** Most items held in the queue (default 1000); more are dropped and counted. */
  maxQueueItems?: number;
  /** Most encoded bytes held in the queue (default 1 MiB). */
  maxQueueBytes?: number;
  /** Time limit of one request (default 10000 ms). */
  requestTimeoutMs?: number;
  /** Fraction of events, logs, plain metrics and root spans kept (default 1). */
  sampleRate?: number;
  /** Per-`event_type` sample rates, overriding `sampleRate`. */
  sampleRates?: Record<string, number>;
  /** Usage bucket length (default 60000 ms). */
  usageGranularityMs?: number;
  /** The retry policy of normal flushes (exponential backoff with full jitter). */
  retry?: {
    /** Attempts per flush round, the first included (default 6). */
    maxAttempts?: number;
    /** Backoff before the first retry (default 200 ms). */
    initialBackoffMs?: number;
    /** Largest backoff (default 30000 ms). */
    maxBackoffMs?: number;
    /** Total time of one round (default 60000 ms). */
    budgetMs?: number;
  };
  /** Stamp `install_id`, kept in `localStorage` (default true). */
  installId?: boolean;
  /** Stamp `session_id`, kept in `sessionStorage`: one per tab session (default true). */
  sessionId?: boolean;
  /** Stamp `page_path` (`location.pathname` when recorded) on events and logs (default true). */
  pagePath?: boolean;
  /** Stamp `page_referrer` (`document.referrer`) on every item (default true). */
  referrer?: boolean;
  /** Stamp `user_agent` (`navigator.userAgent`) on every item (default true). */
  userAgent?: boolean;
  /** Drain the queue on `visibilitychange` to hidden and on `pagehide` (default true). */
  pageExit?: boolean;
  /** The `sdk` attribute (default `beacon-js/<version>`). */
  sdk?: string;
  /** Where to load the wasm from (`init()` only; see `load()`). */
  wasm?: WasmSource;
}

/** The batching core's counters. */
export interface BeaconStats {
  queuedItems: number;
  queuedBytes: number;
  inflightItems: number;
  accepted: number;
  delivered: number;
  batchesSent: number;
  batchesFailed: number;
  /** Unix ms of the last delivered batch; 0 if none yet. */
  lastFlushUnixMs: number;
  droppedQueueFull: number;
  droppedTooLarge: number;
  droppedInvalid: number;
  droppedSampledOut: number;
  droppedDeliveryFailed: number;
}

/** Options of `startSpan`. */
export interface SpanOptions {
  /** The parent: a span, or a W3C `traceparent` value (e.g. from a server response). */
  parent?: Span | string;
  /** Attributes set at start. */
  attrs?: Attrs;
}

/** A span in progress; ends (and is sent) with `end()`. */
export declare class Span {
  private constructor();
  /** The W3C `traceparent` value for outgoing requests. */
  readonly traceparent: string;
  /** The trace id (32 hex digits). */
  readonly traceId: string;
  /** The span id (16 hex digits). */
  readonly spanId: string;
  /** Sets attributes (a key set again keeps its last value). */
  setAttributes(attrs: Attrs): this;
  /** Sets the status (`message` goes with `error`). */
  setStatus(status: SpanStatus, message?: string): this;
  /** Ends the span and records it (later calls do nothing). */
  end(): void;
}

/** A Beacon client. */
export declare class Beacon {
  /** Creates a client; the wasm module must be loaded (`await load()`). Prefer `init()`. */
  constructor(options: BeaconOptions);
  /** Records a user action (`event_type: "behavioral"`). */
  track(name: string, attrs?: Attrs): void;
  /** Records an event of any type (`[a-z0-9_.-]{1,64}`). */
  record(eventType: string, name: string, attrs?: Attrs): void;
  /** Records one metric value as its own item (`metric_type: "value"`). */
  metric(name: string, value: number, attrs?: Attrs): void;
  /** Adds to a counter (summed per name and attributes, sent once per flush interval). */
  counter(name: string, value?: number, attrs?: Attrs): void;
  /** Sets a gauge (the last value is sent once per flush interval). */
  gauge(name: string, value: number, attrs?: Attrs): void;
  /** Records a histogram observation. */
  histogram(name: string, value: number, attrs?: Attrs): void;
  /** Records a counter increment as its own item (`metric_type: "incr"`). */
  incr(name: string, n?: number): void;
  /** Records usage of a resource by a feature (summed per usage bucket). */
  usage(resourceId: string, appFeature: string, amount: number, unit?: UsageUnit): void;
  /** Records a log record (with the open span's `trace_id` and `span_id`, if any). */
  log(level: LogLevel, message: string, attrs?: Attrs): void;
  trace(message: string, attrs?: Attrs): void;
  debug(message: string, attrs?: Attrs): void;
  info(message: string, attrs?: Attrs): void;
  warn(message: string, attrs?: Attrs): void;
  error(message: string, attrs?: Attrs): void;
  fatal(message: string, attrs?: Attrs): void;
  /** Starts a span: a child of `options.parent`, else of the innermost open span. */
  startSpan(name: string, options?: SpanOptions): Span;
  /** Runs `fn` inside a span that ends when it returns or its promise settles. */
  span<T>(name: string, fn: (span: Span) => T, options?: SpanOptions): T;
  /** A child client adding `attrs` to every item; it shares this client's queue. */
  with(attrs: Attrs): Beacon;
  /** Sends everything recorded so far; rejects if some items stay queued. */
  flush(): Promise<void>;
  /** Sends everything (open usage buckets too) within `timeoutMs` (default 5000), then stops. */
  shutdown(options?: { timeoutMs?: number }): Promise<void>;
  /** Hands the queue to the browser now, as on `pagehide`; returns the items handed over. */
  pageExit(): number;
  /** The batching core's counters. */
  stats(): BeaconStats;
  /** The `install_id` on every item, if on. */
  readonly installId: string | undefined;
  /** The `session_id` on every item, if on. */
  readonly sessionId: string | undefined;
}

/** Loads the wasm module once (by default the file next to this module). */
export declare function load(wasm?: WasmSource): Promise<void>;

/** Loads the wasm module and creates a client. */
export declare function init(options: BeaconOptions): Promise<Beacon>;
export default init;

// ---- The shared event schema (v1) -------------------------------------------------------

/** The standard `event_type`s. */
export type StandardEventType =
  | 'behavioral'
  | 'log'
  | 'metric'
  | 'span'
  | 'usage'
  | 'rollup'
  | 'client_report';

/** What every item carries. All other keys are attributes; `event_` is reserved. */
export interface EventEnvelope {
  /** Unique id (UUIDv7 when Beacon makes it), used for de-duplication end to end. */
  event_id: string;
  /** RFC 3339; Beacon writes UTC with milliseconds. */
  event_time: string;
  /** `[a-z0-9_.-]{1,64}`: a standard type or your own. */
  event_type: string;
  /** 1–128 characters. */
  event_name: string;
  service_name?: string;
  service_version?: string;
  service_commit?: string;
  is_dev?: boolean;
  install_id?: string;
  user_id?: string;
  session_id?: string;
  sdk?: string;
  [attribute: string]: unknown;
}

/** A user action. */
export interface BehavioralEvent extends EventEnvelope {
  event_type: 'behavioral';
}

/** A log record; `event_name` is the level. */
export interface LogEvent extends EventEnvelope {
  event_type: 'log';
  level: LogLevel;
  message: string;
  trace_id?: string;
  span_id?: string;
}

/** A metric: one value, one sampled timing or increment, or an aggregate of an interval. */
export interface MetricEvent extends EventEnvelope {
  event_type: 'metric';
  metric_type: 'counter' | 'gauge' | 'histogram' | 'timer' | 'incr' | 'value';
  value?: number;
  rate?: number;
  unit?: string;
  /** Histograms: observations in the interval. */
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  /** Histograms: upper bounds (inclusive) of the buckets but the last. */
  bounds?: number[];
  /** Histograms: one count per bucket (`bounds.length + 1`). */
  bucket_counts?: number[];
  /** Aggregates: start of the interval (RFC 3339). */
  period_start?: string;
}

/** A finished span; `event_time` is its start. */
export interface SpanEvent extends EventEnvelope {
  event_type: 'span';
  trace_id: string;
  span_id: string;
  parent_span_id?: string;
  duration_ms: number;
  status: SpanStatus;
  status_message?: string;
}

/** Usage of a resource by a feature, summed over one bucket. */
export interface UsageEvent extends EventEnvelope {
  event_type: 'usage';
  resource_id: string;
  app_feature: string;
  unit: UsageUnit;
  amount: number;
  granularity_s?: number;
}

/** A periodic roll-up of statistics and traits. */
export interface RollupEvent extends EventEnvelope {
  event_type: 'rollup';
  period_start?: string;
}

/** Items the SDK dropped, by reason, since the last report. */
export interface ClientReportEvent extends EventEnvelope {
  event_type: 'client_report';
  dropped_queue_full: number;
  dropped_too_large: number;
  dropped_invalid: number;
  dropped_sampled_out: number;
  dropped_delivery_failed: number;
}

/** Any item in the shared schema. */
export type BeaconEvent =
  | BehavioralEvent
  | LogEvent
  | MetricEvent
  | SpanEvent
  | UsageEvent
  | RollupEvent
  | ClientReportEvent
  | EventEnvelope;
