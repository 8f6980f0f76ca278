// `node scripts/npm/minify-names.mjs names.json beacon_core.js`: after `wasm-opt
// --minify-imports-and-exports-and-modules` (which prints `names.json`) has renamed the wasm's
// imports and exports to one or two letters, renames them in the wasm-bindgen glue to match.
// wasm-bindgen's names carry a 16-digit hash each (`__wbg_keys_105f5c0857898f84`) and appear
// in both files; short names save some 2 KB gzip. Fails loudly if the glue does not have the
// shape this expects (wasm-bindgen is pinned; see scripts/ci/20-browser.sh).
import { readFileSync, writeFileSync } from 'node:fs';

const [namesPath, gluePath] = process.argv.slice(2);
const text = readFileSync(namesPath, 'utf8');
const names = JSON.parse(text.slice(text.indexOf('{')));
let js = readFileSync(gluePath, 'utf8');

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const replaceOnce = (re, to, what) => {
  if (!re.test(js)) throw new Error(`minify-names: ${what} not found in ${gluePath}`);
  js = js.replace(re, to);
};

// Imports. The glue's own import functions are the keys of its `import0` object; imports
// straight from an inline-JS snippet are the snippet module's exports (`import1.sleep`).
const glueModule = './beacon_core_bg.js';
const fromSnippets = [];
for (const [module, base, short] of names.imports) {
  if (module === glueModule) {
    replaceOnce(new RegExp(`^(\\s+)${escape(base)}:`, 'm'), `$1${short}:`, `import ${base}`);
  } else {
    const ns = js.match(new RegExp(`import \\* as (import\\d+) from "${escape(module)}"`));
    if (!ns) throw new Error(`minify-names: module ${module} not found in ${gluePath}`);
    fromSnippets.push(`${short}: ${ns[1]}.${base}`);
  }
}
// Every import now comes from the module "a".
replaceOnce(
  /return \{\s*__proto__: null,\s*"\.\/beacon_core_bg\.js": import0,[^}]*\};/,
  `return { a: Object.assign(import0, { ${fromSnippets.join(', ')} }) };`,
  'the imports object',
);

// Exports: the glue reads them all as `wasm.<name>`.
const exports = new Map(names.exports);
js = js.replace(/\bwasm\.([A-Za-z0-9_$]+)/g, (_, name) => {
  const short = exports.get(name);
  if (short === undefined) throw new Error(`minify-names: export ${name} not in ${namesPath}`);
  return `wasm.${short}`;
});

writeFileSync(gluePath, js);
