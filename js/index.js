// The npm package's public API: a thin layer over the wasm exports (src/web/). Batching,
// retries, page-exit delivery and the browser context all live in Rust; this file gives the
// methods their JavaScript names, defaults and shapes, and loads the wasm module once.
import loadWasm, { BeaconCore } from './beacon_core.js';

let loading = null;
let loaded = false;

/**
 * Loads the wasm module once. `wasm` is where to find `beacon_core_bg.wasm` (a URL or path
 * string, a `URL`, a `Response`, bytes or a `WebAssembly.Module`); by default it is the file
 * next to this module (`new URL('beacon_core_bg.wasm', import.meta.url)`).
 */
export function load(wasm) {
  if (!loading) {
    loading = loadWasm(wasm === undefined ? undefined : { module_or_path: wasm }).then(() => {
      loaded = true;
    });
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}

/** A span in progress; ends (and is sent) with `end()`. */
export class Span {
  #h;
  /** @internal */
  constructor(handle) {
    this.#h = handle;
  }
  /** The W3C `traceparent` value for outgoing requests. */
  get traceparent() {
    return this.#h.traceparent;
  }
  /** The trace id (32 hex digits). */
  get traceId() {
    return this.#h.traceId;
  }
  /** The span id (16 hex digits). */
  get spanId() {
    return this.#h.spanId;
  }
  /** Sets attributes; returns the span. */
  setAttributes(attrs) {
    this.#h.setAttrs(attrs);
    return this;
  }
  /** Sets the status: `'ok'`, `'error'` (with a message) or `'unset'`; returns the span. */
  setStatus(status, message) {
    this.#h.setStatus(status, message);
    return this;
  }
  /** Ends the span and records it (later calls do nothing). */
  end() {
    this.#h.end();
  }
}

/** A Beacon client. Create one with `await init(options)`. */
export class Beacon {
  #core;

  /**
   * Creates a client. The wasm module must be loaded first (`await load()`); `init()` does
   * both.
   */
  constructor(options, core) {
    if (core instanceof BeaconCore) {
      this.#core = core;
      return;
    }
    if (!loaded) {
      throw new Error('Beacon: the wasm module is not loaded yet: use `await init(options)` or `await load()` first');
    }
    const { wasm: _wasm, ...rest } = options ?? {};
    this.#core = new BeaconCore(rest);
  }

  /** Records a user action (`event_type: "behavioral"`). */
  track(name, attrs) {
    this.#core.record('behavioral', name, attrs);
  }
  /** Records an event of any type. */
  record(eventType, name, attrs) {
    this.#core.record(eventType, name, attrs);
  }
  /** Records one metric value as its own item (not aggregated). */
  metric(name, value, attrs) {
    this.#core.recordMetric(name, value, attrs);
  }
  /** Adds to a counter (summed, sent once per flush interval). */
  counter(name, value = 1, attrs) {
    this.#core.counter(name, value, attrs);
  }
  /** Sets a gauge (the last value is sent once per flush interval). */
  gauge(name, value, attrs) {
    this.#core.gauge(name, value, attrs);
  }
  /** Records a histogram observation (count, sum, min, max, buckets per flush interval). */
  histogram(name, value, attrs) {
    this.#core.histogram(name, value, attrs);
  }
  /** Records a counter increment as its own item. */
  incr(name, n = 1) {
    this.#core.incr(name, n);
  }
  /** Records usage of a resource by a feature (summed per usage bucket). */
  usage(resourceId, appFeature, amount, unit = 'milliseconds') {
    this.#core.usage(resourceId, appFeature, amount, unit);
  }
  /** Records a log record. */
  log(level, message, attrs) {
    this.#core.log(level, message, attrs);
  }
  /** Records a `trace` log record. */
  trace(message, attrs) {
    this.log('trace', message, attrs);
  }
  /** Records a `debug` log record. */
  debug(message, attrs) {
    this.log('debug', message, attrs);
  }
  /** Records an `info` log record. */
  info(message, attrs) {
    this.log('info', message, attrs);
  }
  /** Records a `warn` log record. */
  warn(message, attrs) {
    this.log('warn', message, attrs);
  }
  /** Records an `error` log record. */
  error(message, attrs) {
    this.log('error', message, attrs);
  }
  /** Records a `fatal` log record. */
  fatal(message, attrs) {
    this.log('fatal', message, attrs);
  }
  /** Starts a span (a child of `options.parent`, else of the innermost open span). */
  startSpan(name, options = {}) {
    const parent = options.parent == null ? undefined : String(options.parent.traceparent ?? options.parent);
    const span = new Span(this.#core.startSpan(name, parent));
    if (options.attrs) span.setAttributes(options.attrs);
    return span;
  }
  /**
   * Runs `fn(span)` inside a span that ends when `fn` returns or its promise settles; a
   * thrown error sets the status to `error`. Returns what `fn` returns.
   */
  span(name, fn, options) {
    const span = this.startSpan(name, options);
    const fail = (e) => {
      span.setStatus('error', String(e?.message ?? e));
      span.end();
      throw e;
    };
    let out;
    try {
      out = fn(span);
    } catch (e) {
      fail(e);
    }
    if (out && typeof out.then === 'function') {
      return out.then((v) => {
        span.end();
        return v;
      }, fail);
    }
    span.end();
    return out;
  }
  /** A child client that adds `attrs` to every item; it shares this client's queue. */
  with(attrs) {
    return new Beacon(undefined, this.#core.with(attrs));
  }
  /**
   * Sends everything recorded so far. Rejects when some items could not be delivered (they
   * stay queued for the next try).
   */
  flush() {
    return this.#core.flush();
  }
  /** Sends everything (open usage buckets too) within `timeoutMs`, then stops. */
  shutdown({ timeoutMs = 5000 } = {}) {
    return this.#core.shutdown(timeoutMs);
  }
  /**
   * Hands the queue to the browser now, as on `pagehide` (keepalive `fetch`, then
   * `sendBeacon`). Returns the number of items handed over.
   */
  pageExit() {
    return this.#core.pageExit();
  }
  /** The batching core's counters. */
  stats() {
    return JSON.parse(this.#core.statsJson());
  }
  /** The `install_id` on every item (`undefined` when switched off). */
  get installId() {
    return this.#core.installId;
  }
  /** The `session_id` on every item (`undefined` when switched off). */
  get sessionId() {
    return this.#core.sessionId;
  }
}

/** Loads the wasm module (see `load`) and creates a client. */
export async function init(options) {
  await load(options?.wasm);
  return new Beacon(options);
}

export default init;
