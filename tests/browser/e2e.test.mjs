// End to end in real headless Chromium: a page on 127.0.0.1 loads the built package with a
// plain <script type="module">, records one item of every type, and a receiving server on
// another port of 127.0.0.1 (cross-origin, so CORS is real) must get each item exactly once:
// after a flush, after the page is closed, after it navigates away, when the intake answers
// 500 before recovering, and when the browser was offline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startIntake } from './intake-server.mjs';
import { serveStatic, launch, EVERY_TYPE, keysOf } from './browser.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
let site;
let browser;

before(async () => {
  site = await serveStatic(root);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await site?.close();
});

const pageUrl = (opts) => `${site.origin}/tests/browser/pages/page.html?opts=${encodeURIComponent(JSON.stringify(opts))}`;

async function openPage(context, intake, run, extra = {}) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(pageUrl({
    intakeUrl: intake.url,
    writeKey: 'wk-e2e',
    serviceName: 'e2e',
    attrs: { run },
    flushIntervalMs: 3_600_000,
    ...extra,
  }));
  await page.evaluate(() => window.beaconReady);
  return { page, errors };
}

function assertEveryTypeOnce(intake, run) {
  const items = intake.itemsOf(run);
  assert.deepEqual(keysOf(items), EVERY_TYPE, `${run}: every type, once`);
  assert.equal(new Set(items.map((i) => i.event_id)).size, items.length, `${run}: no duplicate ids`);
  for (const i of items) {
    assert.match(i.install_id, /^[0-9a-f-]{36}$/);
    assert.match(i.session_id, /^[0-9a-f-]{36}$/);
    assert.match(i.user_agent, /Chrome/);
  }
  const events = items.filter((i) => i.event_type === 'behavioral' || i.event_type === 'log');
  assert.ok(events.every((i) => i.page_path === '/tests/browser/pages/page.html'));
}

test('(a) recorded, flushed and shut down: every item arrives once with fetch', async () => {
  const intake = await startIntake({ writeKey: 'wk-e2e' });
  const context = await browser.newContext();
  try {
    const { page, errors } = await openPage(context, intake, 'a');
    await page.evaluate(async () => {
      window.recordEveryType(window.beacon);
      await window.beacon.flush();
      await window.beacon.shutdown();
    });
    assertEveryTypeOnce(intake, 'a');
    const checkout = intake.itemsOf('a').find((i) => i.event_name === 'checkout');
    assert.equal(checkout.step, 2, 'a span attribute set again keeps the last value');
    const steps = intake.state.bodies.join('\n').match(/"step":/g) ?? [];
    assert.equal(steps.length, 1, 'and is written once');
    assert.ok(intake.state.posts.every((p) => p.key === 'wk-e2e' && p.status === 200));
    assert.ok(intake.state.posts.some((p) => p.contentType === 'application/x-ndjson'));
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await intake.close();
  }
});

for (const [run, leave] of [
  ['b-close', (page) => page.close()],
  ['b-navigate', (page) => page.goto(`${site.origin}/tests/browser/pages/blank.html`)],
]) {
  test(`(${run}) recorded, then the page is left at once: page exit delivers every item once`, async () => {
    const intake = await startIntake({ writeKey: 'wk-e2e' });
    const context = await browser.newContext();
    try {
      const { page } = await openPage(context, intake, run);
      await page.evaluate(() => window.recordEveryType(window.beacon));
      assert.equal(intake.state.posts.length, 0, 'nothing sent before leaving');
      await leave(page);
      const arrived = await intake.until(() => intake.itemsOf(run).length >= EVERY_TYPE.length);
      assert.ok(arrived, `${run}: ${intake.itemsOf(run).length} items arrived`);
      // Let any straggling keepalive request land before counting duplicates.
      await context.close();
      assertEveryTypeOnce(intake, run);
      for (const p of intake.state.posts) {
        assert.match(p.contentType, /^text\/plain/, 'page-exit bodies are text/plain');
        assert.equal(p.key, 'wk-e2e', 'the write key travels in the URL');
      }
    } finally {
      await context.close();
      await intake.close();
    }
  });
}

test('(c) the intake answers 500, then recovers: nothing lost, nothing twice', async () => {
  const intake = await startIntake({ writeKey: 'wk-e2e', failFirst: 3 });
  const context = await browser.newContext();
  try {
    const { page } = await openPage(context, intake, 'c', {
      retry: { maxAttempts: 2, initialBackoffMs: 10, maxBackoffMs: 20 },
    });
    const outcome = await page.evaluate(async () => {
      window.recordEveryType(window.beacon);
      const results = [];
      // Bounded: each round is one run of the retry policy; the intake fails 3 times.
      for (let i = 0; i < 10; i++) {
        try {
          await window.beacon.flush();
          results.push('ok');
          break;
        } catch (e) {
          results.push(String(e.message));
        }
      }
      await window.beacon.shutdown();
      return results;
    });
    assert.equal(outcome.at(-1), 'ok', JSON.stringify(outcome));
    assert.ok(outcome.length >= 2, 'at least one round failed first');
    assert.equal(intake.state.failed, 3);
    assertEveryTypeOnce(intake, 'c');
  } finally {
    await context.close();
    await intake.close();
  }
});

test('(d) offline: nothing is sent, items wait; back online they go at once', async () => {
  const intake = await startIntake({ writeKey: 'wk-e2e' });
  const context = await browser.newContext();
  try {
    const { page } = await openPage(context, intake, 'd');
    await context.setOffline(true);
    const rounds = await page.evaluate(async () => {
      window.beacon.track('while-offline');
      let failed = 0;
      for (let i = 0; i < 5; i++) {
        await window.beacon.flush().catch(() => failed++);
      }
      return { failed, onLine: navigator.onLine, queued: window.beacon.stats().queuedItems };
    });
    assert.deepEqual(rounds, { failed: 5, onLine: false, queued: 1 });
    assert.equal(intake.state.posts.length, 0, 'no request while offline');
    await context.setOffline(false);
    // The `online` event flushes without being asked.
    assert.ok(await intake.until(() => intake.itemsOf('d').length === 1));
    assert.equal(intake.itemsOf('d')[0].event_name, 'while-offline');
  } finally {
    await context.close();
    await intake.close();
  }
});

test('install_id persists across pages; session_id is per tab session', async () => {
  const intake = await startIntake({ writeKey: 'wk-e2e' });
  const context = await browser.newContext();
  try {
    const ids = [];
    for (let i = 0; i < 2; i++) {
      const { page } = await openPage(context, intake, 'ids');
      ids.push(await page.evaluate(() => [window.beacon.installId, window.beacon.sessionId, localStorage.getItem('beacon.install_id')]));
      await page.close();
    }
    assert.equal(ids[0][0], ids[1][0], 'same install_id in a second tab');
    assert.equal(ids[0][0], ids[0][2], 'kept in localStorage');
    assert.notEqual(ids[0][1], ids[1][1], 'a new tab is a new session');
    const { page } = await openPage(context, intake, 'ids', { installId: false, sessionId: false, userAgent: false, pagePath: false });
    const off = await page.evaluate(async () => {
      window.beacon.track('private');
      await window.beacon.flush();
      return window.beacon.installId;
    });
    assert.equal(off, undefined);
    const item = intake.itemsOf('ids').find((i) => i.event_name === 'private');
    assert.equal(item.install_id, undefined);
    assert.equal(item.session_id, undefined);
    assert.equal(item.user_agent, undefined);
    assert.equal(item.page_path, undefined);
  } finally {
    await context.close();
    await intake.close();
  }
});
