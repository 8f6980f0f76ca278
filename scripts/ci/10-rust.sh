#!/usr/bin/env bash
# Formatting, lints (native and wasm32) and the native Rust tests.
set -euo pipefail
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features testing -- -D warnings
# The wasm32 pass forbids std clocks, threads and blocking receives (.clippy-wasm/clippy.toml).
# Arc of non-Send values is expected there: nothing is shared across threads in the browser.
CLIPPY_CONF_DIR=.clippy-wasm cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings -A clippy::arc_with_non_send_sync
cargo build --target wasm32-unknown-unknown
cargo test --workspace --features testing
