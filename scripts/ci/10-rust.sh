#!/usr/bin/env bash
# Formatting, lints (native and wasm32) and the native Rust tests.
set -euo pipefail
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features testing -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings
cargo build --target wasm32-unknown-unknown
cargo test --workspace --features testing
