// Packaging: `npm pack` the package as it would be published, install the tarball into a
// tiny app, bundle the app with esbuild (the wasm imported through the package's exports
// map with esbuild's file loader), and run the bundle in headless Chromium against a
// receiving server on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { startIntake } from './intake-server.mjs';
import { serveStatic, launch } from './browser.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('the packed package, bundled by esbuild, records and delivers in Chromium', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'beacon-pack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }));
  // npm always adds the README and licence files when they exist.
  const files = packed[0].files.map((f) => f.path).filter((f) => !/^(README|LICEN[CS]E)/i.test(f)).sort();
  assert.deepEqual(files, [
    'package.json',
    'pkg/beacon_core_bg.wasm',
    'pkg/index.d.ts',
    'pkg/index.js',
  ]);
  const pkgDir = join(dir, 'app', 'node_modules', '@beacon', 'browser');
  mkdirSync(pkgDir, { recursive: true });
  execFileSync('tar', ['xzf', join(dir, packed[0].filename), '-C', pkgDir, '--strip-components=1']);

  const app = join(dir, 'app');
  writeFileSync(join(app, 'main.js'), `
    import { init } from '@beacon/browser';
    import wasm from '@beacon/browser/beacon_core_bg.wasm';
    window.result = (async () => {
      const beacon = await init({ ...window.BEACON_OPTS, wasm });
      beacon.track('bundled-app-loaded', { bundler: 'esbuild' });
      beacon.counter('bundled-clicks', 2);
      await beacon.flush();
      return 'ok';
    })().catch((e) => 'error: ' + e.message);
  `);
  const out = join(app, 'dist');
  await build({
    entryPoints: [join(app, 'main.js')],
    bundle: true,
    format: 'esm',
    outdir: out,
    loader: { '.wasm': 'file' },
    absWorkingDir: app,
    logLevel: 'silent',
  });
  assert.ok(readdirSync(out).some((f) => f.endsWith('.wasm')), 'esbuild emitted the wasm');

  const intake = await startIntake({ writeKey: 'wk-pack' });
  const site = await serveStatic(out);
  const browser = await launch();
  try {
    writeFileSync(join(out, 'index.html'), `<!doctype html><script>window.BEACON_OPTS = ${JSON.stringify({
      intakeUrl: intake.url,
      writeKey: 'wk-pack',
      serviceName: 'bundled',
      flushIntervalMs: 3_600_000,
    })};</script><script type="module" src="./main.js"></script>`);
    const page = await browser.newPage();
    await page.goto(`${site.origin}/index.html`);
    assert.equal(await page.evaluate(() => window.result), 'ok');
    const names = intake.state.items.map((i) => i.event_name).sort();
    assert.deepEqual(names, ['bundled-app-loaded', 'bundled-clicks']);
    assert.ok(intake.state.items.every((i) => i.service_name === 'bundled'));
  } finally {
    await browser.close();
    await site.close();
    await intake.close();
  }
});
