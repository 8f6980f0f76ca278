#!/usr/bin/env bash
# `npm run build`: the crate for wasm32 in the size-tuned `wasm` profile, the wasm-bindgen
# glue (`--target web`: plain <script type="module">, Vite and esbuild alike), `wasm-opt -Oz`,
# and the JS layer bundled with the glue into one minified `index.js`, into pkg/.
set -euo pipefail
cd "$(dirname "$0")/../.."
target_dir="${CARGO_TARGET_DIR:-target}"
# Size: the standard library is rebuilt with the crate (needs the rust-src component) so that
# LTO and opt-level z reach it, and a panic is a bare trap (`-Cpanic=immediate-abort`, no
# panic messages, locations or formatting machinery in the wasm). Both are unstable options of
# the stable toolchain, enabled with RUSTC_BOOTSTRAP for this build only; a panic was already
# an abort (`panic = "abort"` in the `wasm` profile).
RUSTC_BOOTSTRAP=1 \
  RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" \
  cargo build --lib --target wasm32-unknown-unknown --profile wasm -Zbuild-std=std,panic_abort
rm -rf pkg
wasm-bindgen --target web --out-dir pkg --out-name beacon_core \
  "$target_dir/wasm32-unknown-unknown/wasm/beacon.wasm"
# Binaryen from npm (package-lock pins it): Debian's wasm-opt 108 cannot parse the
# reference-types table instructions that wasm-bindgen 0.2.130 emits.
# Rust's wasm32 target emits these post-MVP features; Binaryen must be told it may keep them.
# --zero-filled-memory: a fresh wasm memory is all zeros, so zero data need not be stored.
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)
node_modules/.bin/wasm-opt -Oz --converge --zero-filled-memory \
  --strip-debug --strip-producers --strip-target-features "${features[@]}" \
  -o pkg/beacon_core_bg.wasm.opt pkg/beacon_core_bg.wasm
# Imports and exports renamed to one or two letters, in the wasm and in the glue.
node_modules/.bin/wasm-opt "${features[@]}" --minify-imports-and-exports-and-modules \
  -o pkg/beacon_core_bg.wasm pkg/beacon_core_bg.wasm.opt > pkg/names.json
node scripts/npm/minify-names.mjs pkg/names.json pkg/beacon_core.js
# The JS a page loads: js/index.js, the wasm-bindgen glue and its inline JS snippets bundled
# into one minified ES module (the sources stay readable in js/ and src/; the types, with
# their docs, are in index.d.ts). The wasm is still found next to it through
# `new URL('beacon_core_bg.wasm', import.meta.url)`.
cp js/index.js pkg/entry.js
node_modules/.bin/esbuild pkg/entry.js --bundle --format=esm --minify --legal-comments=none \
  --log-level=warning --outfile=pkg/index.js
cp js/index.d.ts pkg/
rm -rf pkg/entry.js pkg/names.json pkg/beacon_core_bg.wasm.opt pkg/beacon_core.js pkg/beacon_core.d.ts pkg/beacon_core_bg.wasm.d.ts \
  pkg/snippets pkg/package.json pkg/.gitignore
echo "built pkg/: $(ls pkg | tr '\n' ' ')"
