// Packaging: `npm pack` the package as it would be published, install the tarball into a
// tiny app, bundle the app with esbuild (the wasm imported through the package's exports
// map with esbuild's file loader) or with Vite (which finds the wasm itself through the
// package's `new URL('beacon_core_bg.wasm', import.meta.url)`), and run the bundle in
// headless Chromium against a receiving server on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build as esbuild } from 'esbuild';
import { build as vite } from 'vite';
import { startIntake } from './intake-server.mjs';
import { serveStatic, launch, packInto } from './browser.mjs';

const FILES = ['package.json', 'pkg/beacon_core_bg.wasm', 'pkg/index.d.ts', 'pkg/index.js'];

/** The app's code: records two items and flushes; `window.result` says how it went. */
const main = (bundler, wasmImport) => `
  import { init } from '@beacon/browser';
  ${wasmImport}
  window.result = (async () => {
    const beacon = await init({ ...window.BEACON_OPTS${wasmImport ? ', wasm' : ''} });
    beacon.track('bundled-app-loaded', { bundler: '${bundler}' });
    beacon.counter('bundled-clicks', 2);
    await beacon.flush();
    return 'ok';
  })().catch((e) => 'error: ' + e.message);
`;

/** Runs the bundled app in `out` (its page: `index.html`) in Chromium; checks what arrived. */
async function runInChromium(out, writeIndex, bundler) {
  const intake = await startIntake({ writeKey: 'wk-pack' });
  const site = await serveStatic(out);
  const browser = await launch();
  try {
    writeIndex(`<script>window.BEACON_OPTS = ${JSON.stringify({
      intakeUrl: intake.url,
      writeKey: 'wk-pack',
      serviceName: 'bundled',
      flushIntervalMs: 3_600_000,
    })};</script>`);
    const page = await browser.newPage();
    await page.goto(`${site.origin}/index.html`);
    assert.equal(await page.evaluate(() => window.result), 'ok');
    const names = intake.state.items.map((i) => i.event_name).sort();
    assert.deepEqual(names, ['bundled-app-loaded', 'bundled-clicks']);
    assert.ok(intake.state.items.every((i) => i.service_name === 'bundled'));
    assert.equal(intake.state.items.find((i) => i.event_name === 'bundled-app-loaded').bundler, bundler);
  } finally {
    await browser.close();
    await site.close();
    await intake.close();
  }
}

function tempApp(t) {
  const dir = mkdtempSync(join(tmpdir(), 'beacon-pack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const app = join(dir, 'app');
  mkdirSync(app);
  assert.deepEqual(packInto(app), FILES);
  return app;
}

test('the packed package, bundled by esbuild, records and delivers in Chromium', async (t) => {
  const app = tempApp(t);
  writeFileSync(join(app, 'main.js'), main('esbuild', "import wasm from '@beacon/browser/beacon_core_bg.wasm';"));
  const out = join(app, 'dist');
  await esbuild({
    entryPoints: [join(app, 'main.js')],
    bundle: true,
    format: 'esm',
    outdir: out,
    loader: { '.wasm': 'file' },
    absWorkingDir: app,
    logLevel: 'silent',
  });
  assert.ok(readdirSync(out).some((f) => f.endsWith('.wasm')), 'esbuild emitted the wasm');
  await runInChromium(
    out,
    (head) => writeFileSync(join(out, 'index.html'), `<!doctype html>${head}<script type="module" src="./main.js"></script>`),
    'esbuild',
  );
});

test('the packed package, bundled by Vite, records and delivers in Chromium', async (t) => {
  const app = tempApp(t);
  writeFileSync(join(app, 'main.js'), main('vite', ''));
  // Vite's entry is the page; the options are filled in after the build (see below).
  writeFileSync(join(app, 'index.html'), '<!doctype html><!--opts--><script type="module" src="./main.js"></script>');
  const out = join(app, 'dist');
  await vite({ root: app, logLevel: 'silent', configFile: false, build: { outDir: out } });
  const assets = readdirSync(join(out, 'assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `Vite emitted the wasm: ${assets}`);
  const built = join(out, 'index.html');
  const html = readFileSync(built, 'utf8');
  assert.ok(html.includes('<!--opts-->'), 'the built page keeps the placeholder');
  await runInChromium(out, (head) => writeFileSync(built, html.replace('<!--opts-->', head)), 'vite');
});
