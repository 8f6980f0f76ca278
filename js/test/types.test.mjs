// The TypeScript types of the event schema against the fixtures the Rust tests read
// (tests/fixtures/valid.json): each fixture is written out as a typed constant of the type
// its event_type names, and `tsc --noEmit --strict` must accept the file. A deliberately
// broken item must be refused, so the check can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('../../', import.meta.url);
const tsc = new URL('node_modules/.bin/tsc', root).pathname;
const TYPE_OF = {
  behavioral: 'BehavioralEvent',
  log: 'LogEvent',
  metric: 'MetricEvent',
  span: 'SpanEvent',
  usage: 'UsageEvent',
  rollup: 'RollupEvent',
  client_report: 'ClientReportEvent',
};

function typecheck(items) {
  const dir = mkdtempSync(join(tmpdir(), 'beacon-types-'));
  try {
    copyFileSync(new URL('js/index.d.ts', root), join(dir, 'beacon.d.ts'));
    const lines = [`import type { ${[...Object.values(TYPE_OF), 'EventEnvelope', 'BeaconEvent'].join(', ')} } from './beacon';`];
    items.forEach((item, i) => {
      const ty = TYPE_OF[item.event_type] ?? 'EventEnvelope';
      lines.push(`export const item${i}: ${ty} = ${JSON.stringify(item)};`);
      lines.push(`export const any${i}: BeaconEvent = item${i};`);
    });
    writeFileSync(join(dir, 'check.ts'), lines.join('\n') + '\n');
    execFileSync(tsc, ['--noEmit', '--strict', '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler', '--lib', 'es2022,dom', join(dir, 'check.ts')], { stdio: 'pipe' });
    return { ok: true };
  } catch (e) {
    return { ok: false, out: String(e.stdout) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const valid = JSON.parse(readFileSync(new URL('tests/fixtures/valid.json', root), 'utf8'));

test('every valid fixture type-checks as the type its event_type names', () => {
  const r = typecheck(valid);
  assert.ok(r.ok, r.out);
});

test('an item missing a required field of its type does not type-check', () => {
  const log = valid.find((i) => i.event_type === 'log');
  const { message: _m, ...broken } = log;
  const r = typecheck([broken]);
  assert.equal(r.ok, false);
  assert.match(r.out, /message/);
});

test('every standard type of the JSON Schema has a TypeScript type', () => {
  const schema = JSON.parse(readFileSync(new URL('schema/beacon-event.schema.json', root), 'utf8'));
  const types = schema.properties.event_type.examples;
  assert.deepEqual([...types].sort(), Object.keys(TYPE_OF).sort());
  const dts = readFileSync(new URL('js/index.d.ts', root), 'utf8');
  for (const t of types) assert.match(dts, new RegExp(`event_type: '${t}'`), t);
});
