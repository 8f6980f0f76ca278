#!/usr/bin/env bash
# The browser side: installs what is missing on a fresh machine (Debian's chromium and
# chromedriver, the wasm32 target, the standard library's source, wasm-bindgen-cli matching
# the crate's pinned wasm-bindgen, the npm packages), builds the npm package, then runs the
# core's tests on wasm32 (Node and headless Chromium), the package's JS tests, the
# end-to-end and packaging tests in headless Chromium, and the size budget.
set -euo pipefail
cd "$(dirname "$0")/../.."

WASM_BINDGEN_VERSION=0.2.130

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# `npm run build` rebuilds the standard library for the wasm (-Zbuild-std): it needs its source.
rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
npm ci --no-audit --no-fund

echo "--- npm run build"
npm run build
echo "--- npm run size"
npm run size

echo "--- the core's tests on wasm32, in Node"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
cargo test --target wasm32-unknown-unknown --test wasm

echo "--- the core's tests on wasm32, in headless Chromium"
# wasm-bindgen-test-runner reads the Chromium flags from ./webdriver.json.
WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver \
  cargo test --target wasm32-unknown-unknown --test wasm

echo "--- JS tests of the package API (Node)"
npm test

echo "--- end-to-end and packaging tests (headless Chromium)"
npm run test:browser
