// The npm package's public API: a thin layer over the wasm exports (src/web/). Batching,
// sampling, aggregation, encoding, retries and page-exit draining all live in Rust; this file
// gives the methods their JavaScript names, checks the options and arguments (throwing errors
// that name them), fills in the defaults, reads the browser context (install and session ids,
// page attributes), listens for page exit and loads the wasm module once. It hands options
// and attributes to the wasm as flat arrays, which keeps the wasm and its glue small.
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

const fail = (msg) => {
  throw new Error(msg);
};
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Attributes as the wasm takes them: `[key, value, …]`, nested values as JSON text. */
function flat(attrs, extra) {
  const out = [];
  if (attrs != null) {
    if (!isObject(attrs)) fail('attributes must be a plain object');
    for (const k of Object.keys(attrs)) {
      let v = attrs[k];
      if (v === undefined) continue;
      if (v !== null && typeof v === 'object') {
        try {
          v = JSON.stringify(v) ?? null;
        } catch {
          v = null;
        }
      } else if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') v = null;
      out.push(k, v);
    }
  }
  if (extra && !out.some((k, i) => i % 2 === 0 && k === extra[0])) out.push(...extra);
  return out;
}

// Every option with its type and default (`undefined`: not set). `retry` is checked below.
const S = 'string';
const N = 'number';
const B = 'boolean';
const O = 'object';
const OPTIONS = {
  intakeUrl: [S],
  writeKey: [S],
  format: [S],
  headers: [O],
  requestTimeoutMs: [N, 10000],
  flushIntervalMs: [N, 5000],
  maxBatchSize: [N, 100],
  maxBatchBytes: [N, 56 * 1024],
  maxQueueItems: [N, 1000],
  maxQueueBytes: [N, 1024 * 1024],
  retry: [O],
  sdk: [S],
  serviceName: [S],
  serviceVersion: [S],
  userId: [S],
  isDev: [B],
  sampleRate: [N],
  sampleRates: [O],
  usageGranularityMs: [N],
  attrs: [O],
  installId: [B, true],
  sessionId: [B, true],
  pagePath: [B, true],
  referrer: [B, true],
  userAgent: [B, true],
  pageExit: [B, true],
  wasm: [],
};
const RETRY = { maxAttempts: 6, initialBackoffMs: 200, maxBackoffMs: 30000, budgetMs: 60000 };

/** Checks `obj` against `spec` (`{ key: [type, default] }`) and fills in the defaults. */
function check(obj, spec, path) {
  if (!isObject(obj)) fail(`${path} must be an object`);
  for (const k of Object.keys(obj)) if (!(k in spec)) fail(`${path}: unknown option "${k}"`);
  const o = {};
  for (const [k, [type, def]] of Object.entries(spec)) {
    const v = obj[k] ?? def;
    if (v != null && type) {
      if (typeof v !== type || (type === O && !isObject(v))) fail(`${path}.${k} must be ${type === O ? 'an' : 'a'} ${type}`);
      if (type === N && !(v >= 0 && v < Infinity)) fail(`${path}.${k} must be a number >= 0`);
    }
    o[k] = v;
  }
  return o;
}

/** The entries of a map option whose values must all be of `type`, flat. */
function map(obj, type, path) {
  const out = [];
  for (const [k, v] of Object.entries(obj ?? {})) {
    if (typeof v !== type) fail(`${path}.${k} must be a ${type}`);
    out.push(k, v);
  }
  return out;
}

/** Bytes as lowercase hex digits. */
const hex = (bytes) => Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join('');

/** A new UUIDv7 (time-ordered), as the core's ids. */
function uuid7() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  for (let i = 5, t = Date.now(); i >= 0; i--, t = Math.floor(t / 256)) b[i] = t % 256;
  b[6] = (b[6] & 15) | 0x70;
  b[8] = (b[8] & 63) | 0x80;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The id kept under `key` in `localStorage` or `sessionStorage`, created on first use.
 * Storage can be missing or throw (privacy modes, sandboxed frames, workers): the id then
 * lives as long as the client.
 */
function storedId(storage, key) {
  let store;
  try {
    store = globalThis[storage];
    const id = store?.getItem(key);
    if (id && id.length <= 128) return id;
  } catch {}
  const id = uuid7();
  try {
    store?.setItem(key, id);
  } catch {}
  return id;
}

/** The core's flush (or shutdown, with `shutdownMs`) as a Promise. */
const settle = (core, shutdownMs) =>
  new Promise((resolve, reject) => core.flush(shutdownMs, (e) => (e === undefined ? resolve() : reject(new Error(e)))));

/**
 * The 25 bytes of a W3C `traceparent` (a string, or a span's): trace id, span id, flags.
 * Version 00 has exactly four fields; later versions may add more.
 */
function traceparent(value) {
  const s = String(value.traceparent ?? value).trim();
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(s);
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[5]) || /^0+$/.test(m[2]) || /^0+$/.test(m[3])) {
    fail(`span parent "${s}" is not a W3C traceparent`);
  }
  return Uint8Array.from((m[2] + m[3] + m[4]).match(/../g), (h) => parseInt(h, 16));
}

/** A span in progress; ends (and is sent) with `end()`. */
export class Span {
  #h;
  #status = [];
  #attrs = new Map();
  /** @internal */
  constructor(handle) {
    this.#h = handle;
  }
  /** The W3C `traceparent` value for outgoing requests (`''` once ended). */
  get traceparent() {
    const h = hex(this.#h.context);
    return h && `00-${h.slice(0, 32)}-${h.slice(32, 48)}-${h.slice(48)}`;
  }
  /** The trace id (32 hex digits). */
  get traceId() {
    return this.traceparent.slice(3, 35);
  }
  /** The span id (16 hex digits). */
  get spanId() {
    return this.traceparent.slice(36, 52);
  }
  /** Sets attributes (a key set again keeps its last value); returns the span. */
  setAttributes(attrs) {
    const a = flat(attrs);
    for (let i = 0; i < a.length; i += 2) this.#attrs.set(a[i], a[i + 1]);
    return this;
  }
  /** Sets the status: `'ok'`, `'error'` (with a message) or `'unset'`; returns the span. */
  setStatus(status, message) {
    if (!['ok', 'error', 'unset'].includes(status)) fail(`span status "${status}" must be ok, error or unset`);
    this.#status = [status, message == null ? undefined : String(message)];
    return this;
  }
  /** Ends the span and records it (later calls do nothing). */
  end() {
    if (this.#attrs.size) this.#h.setAttrs([...this.#attrs].flat());
    this.#attrs.clear();
    this.#h.end(...this.#status);
  }
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
const UNITS = ['milliseconds', 'bytes', 'bytes_sec'];
const STATS = [
  'queuedItems',
  'queuedBytes',
  'inflightItems',
  'accepted',
  'delivered',
  'batchesSent',
  'batchesFailed',
  'lastFlushUnixMs',
  'droppedQueueFull',
  'droppedTooLarge',
  'droppedInvalid',
  'droppedSampledOut',
  'droppedDeliveryFailed',
];

/** A Beacon client. Create one with `await init(options)`. */
export class Beacon {
  #core;
  #shared;

  /**
   * Creates a client. The wasm module must be loaded first (`await load()`); `init()` does
   * both.
   */
  constructor(options, core, shared) {
    if (core instanceof BeaconCore) {
      this.#core = core;
      this.#shared = shared;
      return;
    }
    if (!loaded) {
      fail('Beacon: the wasm module is not loaded yet: use `await init(options)` or `await load()` first');
    }
    const o = check(options ?? {}, OPTIONS, 'options');
    if (!o.intakeUrl) fail('options: intakeUrl is required');
    if (o.format != null && o.format !== 'ndjson' && o.format !== 'json') fail('options.format must be "ndjson" or "json"');
    const r = check(o.retry ?? {}, Object.fromEntries(Object.entries(RETRY).map(([k, v]) => [k, [N, v]])), 'options');
    const g = globalThis;
    const context = [];
    if (o.installId) context.push('install_id', storedId('localStorage', 'beacon.install_id'));
    if (o.sessionId) context.push('session_id', storedId('sessionStorage', 'beacon.session_id'));
    if (o.referrer && g.document?.referrer) context.push('page_referrer', g.document.referrer);
    if (o.userAgent && g.navigator?.userAgent) context.push('user_agent', g.navigator.userAgent);
    this.#core = new BeaconCore([
      o.intakeUrl,
      o.writeKey,
      o.format === 'json',
      map(o.headers, S, 'options.headers'),
      o.requestTimeoutMs,
      o.flushIntervalMs,
      o.maxBatchSize,
      o.maxBatchBytes,
      o.maxQueueItems,
      o.maxQueueBytes,
      r.maxAttempts,
      r.initialBackoffMs,
      r.maxBackoffMs,
      r.budgetMs,
      o.sdk,
      o.serviceName,
      o.serviceVersion,
      o.userId,
      o.isDev,
      o.sampleRate,
      map(o.sampleRates, N, 'options.sampleRates'),
      o.usageGranularityMs,
      [...context, ...flat(o.attrs)],
    ]);
    const c = this.#core;
    const off = [];
    const listen = (target, event, f) => {
      target?.addEventListener?.(event, f);
      off.push(() => target?.removeEventListener?.(event, f));
    };
    if (o.pageExit) {
      const exit = () => c.pageExit();
      listen(g.document, 'visibilitychange', () => g.document.visibilityState === 'hidden' && exit());
      if (g.document) listen(g, 'pagehide', exit);
    }
    // Back online: flush at once.
    listen(g, 'online', () => settle(c).catch(() => {}));
    this.#shared = {
      installId: o.installId ? context[1] : undefined,
      sessionId: o.sessionId ? context[o.installId ? 3 : 1] : undefined,
      pagePath: o.pagePath && g.location !== undefined,
      pageExit: o.pageExit,
      off,
    };
  }

  /** Attributes of an event or log record, with the current `page_path` unless switched off. */
  #page(attrs) {
    return flat(attrs, this.#shared.pagePath && ['page_path', globalThis.location?.pathname]);
  }

  /** Records a user action (`event_type: "behavioral"`). */
  track(name, attrs) {
    this.record('behavioral', name, attrs);
  }
  /** Records an event of any type. */
  record(eventType, name, attrs) {
    this.#core.record(0, eventType, name, this.#page(attrs));
  }
  /** Records one metric value as its own item (not aggregated). */
  metric(name, value, attrs) {
    this.#core.metric(0, name, value, flat(attrs));
  }
  /** Adds to a counter (summed, sent once per flush interval). */
  counter(name, value = 1, attrs) {
    this.#core.metric(1, name, value, flat(attrs));
  }
  /** Sets a gauge (the last value is sent once per flush interval). */
  gauge(name, value, attrs) {
    this.#core.metric(2, name, value, flat(attrs));
  }
  /** Records a histogram observation (count, sum, min, max, buckets per flush interval). */
  histogram(name, value, attrs) {
    this.#core.metric(3, name, value, flat(attrs));
  }
  /** Records a counter increment as its own item. */
  incr(name, n = 1) {
    this.#core.metric(4, name, n);
  }
  /** Records usage of a resource by a feature (summed per usage bucket). */
  usage(resourceId, appFeature, amount, unit = 'milliseconds') {
    const u = UNITS.indexOf(unit);
    if (u < 0) fail(`usage unit "${unit}" must be milliseconds, bytes or bytes_sec`);
    if (!(amount >= 0)) fail('usage amount must be a number >= 0');
    this.#core.usage(resourceId, appFeature, amount, u);
  }
  /** Records a log record. */
  log(level, message, attrs) {
    const l = LEVELS.indexOf(level);
    if (l < 0) fail(`log level "${level}" must be trace, debug, info, warn, error or fatal`);
    this.#core.record(l + 1, message, '', this.#page(attrs));
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
    const span = new Span(this.#core.startSpan(name, options.parent == null ? [] : traceparent(options.parent)));
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
    return new Beacon(undefined, this.#core.with(flat(attrs)), this.#shared);
  }
  /**
   * Sends everything recorded so far. Rejects when some items could not be delivered (they
   * stay queued for the next try).
   */
  flush() {
    return settle(this.#core, undefined);
  }
  /** Sends everything (open usage buckets too) within `timeoutMs`, then stops. */
  shutdown({ timeoutMs = 5000 } = {}) {
    for (const f of this.#shared.off.splice(0)) f();
    return settle(this.#core, Math.max(0, Number(timeoutMs) || 0));
  }
  /**
   * Hands the queue to the browser now, as on `pagehide` (keepalive `fetch`, then
   * `sendBeacon`). Returns the number of items handed over.
   */
  pageExit() {
    return this.#shared.pageExit ? this.#core.pageExit() : 0;
  }
  /** The batching core's counters. */
  stats() {
    const v = this.#core.stats();
    return Object.fromEntries(STATS.map((k, i) => [k, v[i]]));
  }
  /** The `install_id` on every item (`undefined` when switched off). */
  get installId() {
    return this.#shared.installId;
  }
  /** The `session_id` on every item (`undefined` when switched off). */
  get sessionId() {
    return this.#shared.sessionId;
  }
}

/** Loads the wasm module (see `load`) and creates a client. */
export async function init(options) {
  await load(options?.wasm);
  return new Beacon(options);
}

export default init;
