// Shared by the browser tests: a static server for the repo's pkg/ and test pages on
// 127.0.0.1, and headless Debian Chromium driven by playwright-core (never a downloaded
// browser).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Packs the package with `npm pack` and unpacks it as `<app>/node_modules/@beacon/browser`,
 * as `npm install` would. Returns the packed file names (without README and licence files).
 */
export function packInto(app) {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', app], { cwd: root, encoding: 'utf8' }));
  const pkgDir = join(app, 'node_modules', '@beacon', 'browser');
  mkdirSync(pkgDir, { recursive: true });
  execFileSync('tar', ['xzf', join(app, packed[0].filename), '-C', pkgDir, '--strip-components=1']);
  // npm always adds the README and licence files when they exist.
  return packed[0].files.map((f) => f.path).filter((f) => !/^(README|LICEN[CS]E)/i.test(f)).sort();
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

/** Serves files under `dir` (and nothing outside it) on 127.0.0.1. */
export async function serveStatic(dir) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (path.includes('..')) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(join(dir, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launch() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

/** The item keys a page's `recordEveryType` produces. */
export const EVERY_TYPE = [
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

export const keysOf = (items) => items.map((i) => `${i.event_type}/${i.event_name}`).sort();
