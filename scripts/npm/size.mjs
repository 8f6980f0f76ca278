// `npm run size`: raw, gzip and brotli bytes of what a page loads (the wasm and the JS).
import { readFileSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';

const dir = new URL('../../pkg/', import.meta.url);
// index.js is the JS layer bundled with the wasm-bindgen glue (scripts/npm/build.sh).
const files = ['beacon_core_bg.wasm', 'index.js'];
const row = (name, buf) => {
  const gz = gzipSync(buf, { level: 9 }).length;
  const br = brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  console.log(`${name.padEnd(22)} raw ${String(buf.length).padStart(7)}  gzip ${String(gz).padStart(6)}  brotli ${String(br).padStart(6)}`);
  return { raw: buf.length, gz, br };
};
const total = { raw: 0, gz: 0, br: 0 };
for (const f of files) {
  const r = row(f, readFileSync(new URL(f, dir)));
  total.raw += r.raw;
  total.gz += r.gz;
  total.br += r.br;
}
console.log(`${'total (sum of files)'.padEnd(22)} raw ${String(total.raw).padStart(7)}  gzip ${String(total.gz).padStart(6)}  brotli ${String(total.br).padStart(6)}`);
const budget = 40 * 1024;
if (total.gz > budget) {
  console.log(`OVER BUDGET: ${total.gz} B gzip > ${budget} B`);
  if (process.argv.includes('--check')) process.exit(1);
} else {
  console.log(`within budget: ${total.gz} B gzip <= ${budget} B`);
}
