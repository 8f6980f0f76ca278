// The package's API in Node against a real HTTP server on 127.0.0.1: the wasm core, the JS
// layer and Node's global fetch, no mocks. (Node has no document: page exit is covered by
// the browser tests in tests/browser/.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { load, init, Beacon } from '../../pkg/index.js';
import { startIntake } from '../../tests/browser/intake-server.mjs';

const root = new URL('../../', import.meta.url);

let intake;
before(async () => {
  await load(readFileSync(new URL('pkg/beacon_core_bg.wasm', root)));
  intake = await startIntake({ writeKey: 'wk-1' });
});
after(() => intake.close());

const opts = (run, extra = {}) => ({
  intakeUrl: intake.url,
  writeKey: 'wk-1',
  serviceName: 'js-test',
  attrs: { run },
  flushIntervalMs: 3_600_000,
  ...extra,
});

function recordEveryType(b) {
  b.track('signup', { plan: 'pro', seats: 3, trial: false });
  b.record('behavioral', 'login-start');
  b.metric('fps', 59.5);
  b.counter('clicks', 2, { button: 'buy' });
  b.counter('clicks', 3, { button: 'buy' });
  b.gauge('heap_mb', 12);
  b.histogram('latency_ms', 8);
  b.histogram('latency_ms', 80);
  b.incr('retries');
  b.usage('cpu', 'render', 120, 'milliseconds');
  b.warn('slow frame', { frame: 7 });
  const span = b.startSpan('checkout', { attrs: { cart: 2 } });
  b.span('load-cart', () => 42);
  span.setStatus('ok').end();
}

const EXPECTED = [
  'behavioral/login-start',
  'behavioral/signup',
  'log/warn',
  'metric/clicks',
  'metric/fps',
  'metric/heap_mb',
  'metric/latency_ms',
  'metric/retries',
  'span/checkout',
  'span/load-cart',
  'usage/usage',
];
const keys = (items) => items.map((i) => `${i.event_type}/${i.event_name}`).sort();

test('every type of item arrives once, in the shared schema, with the write key', async () => {
  const b = await init(opts('every'));
  recordEveryType(b);
  await b.flush();
  await b.shutdown();
  const items = intake.itemsOf('every');
  assert.deepEqual(keys(items), EXPECTED);
  assert.equal(new Set(items.map((i) => i.event_id)).size, items.length);
  for (const i of items) {
    assert.match(i.event_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(i.service_name, 'js-test');
    assert.match(i.sdk, /^beacon-js\//);
  }
  const by = (k) => items.find((i) => `${i.event_type}/${i.event_name}` === k);
  assert.equal(by('metric/clicks').value, 5);
  assert.equal(by('metric/clicks').button, 'buy');
  assert.equal(by('behavioral/signup').seats, 3);
  assert.equal(by('log/warn').message, 'slow frame');
  assert.equal(by('usage/usage').amount, 120);
  assert.equal(by('span/load-cart').parent_span_id, by('span/checkout').span_id);
  assert.equal(by('span/checkout').status, 'ok');
  assert.equal(by('span/checkout').cart, 2);
  const posts = intake.state.posts.filter((p) => p.status === 200);
  assert.ok(posts.length > 0 && posts.every((p) => p.key === 'wk-1'));
  assert.ok(posts.some((p) => p.contentType === 'application/x-ndjson'));
});

test('with(attrs) children add attributes and share the queue', async () => {
  const b = await init(opts('with', { format: 'json' }));
  const checkout = b.with({ flow: 'checkout' });
  checkout.track('pay', { amount: 9.5 });
  b.track('browse');
  await checkout.flush();
  const items = intake.itemsOf('with');
  assert.equal(items.length, 2, 'one flush of the child sends the shared queue');
  assert.equal(items.find((i) => i.event_name === 'pay').flow, 'checkout');
  assert.equal(items.find((i) => i.event_name === 'browse').flow, undefined);
  await b.shutdown();
});

test('an intake that answers 500 and recovers loses nothing and duplicates nothing', async () => {
  const failing = await startIntake({ failFirst: 2 });
  try {
    const b = await init({ ...opts('500'), intakeUrl: failing.url, writeKey: undefined, retry: { maxAttempts: 1 } });
    for (let i = 0; i < 20; i++) b.track('step', { i });
    await assert.rejects(b.flush(), /could not be delivered/);
    assert.equal(b.stats().queuedItems, 20);
    await assert.rejects(b.flush());
    await b.flush();
    const got = failing.itemsOf('500').map((i) => i.i);
    assert.deepEqual(got, [...Array(20).keys()]);
    assert.equal(failing.state.failed, 2);
    await b.shutdown();
  } finally {
    await failing.close();
  }
});

test('offline: flushes send nothing and items wait in the queue', async (t) => {
  const desc = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  const nav = { onLine: false };
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  t.after(() => {
    if (desc) Object.defineProperty(globalThis, 'navigator', desc);
    else delete globalThis.navigator;
  });
  const b = await init(opts('offline'));
  b.track('queued-while-offline');
  const before = intake.state.posts.length;
  for (let i = 0; i < 5; i++) await assert.rejects(b.flush());
  assert.equal(intake.state.posts.length, before, 'no request while offline');
  assert.equal(b.stats().queuedItems, 1);
  nav.onLine = true;
  await b.flush();
  assert.equal(intake.itemsOf('offline').length, 1);
  await b.shutdown();
});

test('bad options and bad arguments throw errors that name them', async () => {
  await assert.rejects(init({ serviceName: 'x' }), /intakeUrl is required/);
  await assert.rejects(init({ intakeUrl: intake.url, intakeURL: 'typo' }), /unknown option "intakeURL"/);
  await assert.rejects(init({ intakeUrl: 'ftp://x' }), /must start with http/);
  await assert.rejects(init({ intakeUrl: intake.url, format: 'xml' }), /format must be/);
  await assert.rejects(init({ intakeUrl: intake.url, sampleRate: 2 }), /sample rate/);
  const b = await init(opts('bad'));
  assert.throws(() => b.log('loud', 'x'), /log level "loud"/);
  assert.throws(() => b.usage('cpu', 'f', 1, 'parsecs'), /usage unit "parsecs"/);
  assert.throws(() => b.track('x', [1, 2]), /plain object/);
  assert.throws(() => b.startSpan('x', { parent: 'nope' }), /traceparent/);
  await b.shutdown();
});

test('invalid names are dropped and counted, not thrown; stats add up', async () => {
  const b = await init(opts('stats'));
  b.track('ok');
  b.record('Bad Type!', 'x');
  b.track('');
  let s = b.stats();
  assert.equal(s.accepted, 1);
  assert.equal(s.droppedInvalid, 2);
  assert.equal(s.queuedItems, 1);
  await b.flush();
  s = b.stats();
  assert.equal(s.delivered, 1);
  assert.equal(s.queuedItems, 0);
  const report = intake.state.items.find((i) => i.event_type === 'client_report' && i.dropped_invalid === 2);
  assert.ok(report, 'the drops travel as a client_report');
  await b.shutdown();
  assert.equal(b.stats().queuedItems, 0);
});

test('new Beacon() works once the wasm is loaded; ids can be switched off', async () => {
  const b = new Beacon({ ...opts('ctor'), installId: false, sessionId: false });
  assert.equal(b.installId, undefined);
  assert.equal(b.sessionId, undefined);
  b.track('x');
  await b.flush();
  const [item] = intake.itemsOf('ctor');
  assert.equal(item.install_id, undefined);
  assert.equal(item.session_id, undefined);
  await b.shutdown();
  const on = await init(opts('ids'));
  assert.match(on.installId, /^[0-9a-f-]{36}$/);
  await on.shutdown();
});

test('a span gives its traceparent and ids; a remote parent continues its trace', async () => {
  const b = await init(opts('trace'));
  const span = b.startSpan('outer');
  assert.match(span.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  assert.equal(span.traceId, span.traceparent.slice(3, 35));
  assert.equal(span.spanId, span.traceparent.slice(36, 52));
  const remote = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const child = b.startSpan('from-server', { parent: remote });
  assert.equal(child.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.notEqual(child.spanId, '00f067aa0ba902b7');
  child.end();
  span.end();
  assert.equal(span.traceparent, '', 'no context once ended');
  assert.throws(() => b.startSpan('x', { parent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' }), /traceparent/);
  await b.flush();
  const got = intake.itemsOf('trace');
  assert.equal(got.find((i) => i.event_name === 'from-server').parent_span_id, '00f067aa0ba902b7');
  assert.equal(got.find((i) => i.event_name === 'from-server').trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
  await b.shutdown();
});

test('a request that gets no answer times out, and its items stay queued', { timeout: 10_000 }, async () => {
  const { createServer } = await import('node:http');
  const silent = createServer(() => {}); // accepts the request and never answers
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const b = await init({
      ...opts('timeout'),
      intakeUrl: `http://127.0.0.1:${silent.address().port}/v1/events`,
      requestTimeoutMs: 200,
      retry: { maxAttempts: 1 },
    });
    b.track('waits');
    await assert.rejects(b.flush(), /could not be delivered/);
    assert.equal(b.stats().queuedItems, 1);
    assert.equal(b.stats().batchesFailed, 1);
    await b.shutdown({ timeoutMs: 0 }).catch(() => {});
  } finally {
    silent.closeAllConnections();
    silent.close();
  }
});
