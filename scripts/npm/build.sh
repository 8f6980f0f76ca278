#!/usr/bin/env bash
# `npm run build`: the crate for wasm32 in the size-tuned `wasm` profile, the wasm-bindgen
# glue (`--target web`: plain <script type="module">, Vite and esbuild alike), `wasm-opt -Oz`,
# and the JS layer (minified), into pkg/.
set -euo pipefail
cd "$(dirname "$0")/../.."
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --lib --target wasm32-unknown-unknown --profile wasm
rm -rf pkg
wasm-bindgen --target web --out-dir pkg --out-name beacon_core \
  "$target_dir/wasm32-unknown-unknown/wasm/beacon.wasm"
# Binaryen from npm (package-lock pins it): Debian's wasm-opt 108 cannot parse the
# reference-types table instructions that wasm-bindgen 0.2.130 emits.
# Rust's wasm32 target emits these post-MVP features; Binaryen must be told it may keep them.
# --zero-filled-memory: a fresh wasm memory is all zeros, so zero data need not be stored.
node_modules/.bin/wasm-opt -Oz --converge --zero-filled-memory \
  --strip-debug --strip-producers --strip-target-features \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  -o pkg/beacon_core_bg.wasm.opt pkg/beacon_core_bg.wasm
mv pkg/beacon_core_bg.wasm.opt pkg/beacon_core_bg.wasm
cp js/index.js js/index.d.ts pkg/
# The JS a page loads, minified with esbuild (the sources stay readable in js/; the types,
# with their docs, are in the .d.ts files).
for f in pkg/beacon_core.js pkg/index.js; do
  node_modules/.bin/esbuild "$f" --minify --legal-comments=none --log-level=warning \
    --allow-overwrite --outfile="$f"
done
rm -f pkg/package.json pkg/.gitignore
echo "built pkg/: $(ls pkg | tr '\n' ' ')"
