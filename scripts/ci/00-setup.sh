#!/usr/bin/env bash
# Toolchain pieces every later section needs. The two long installs a fresh machine needs (the
# tansu Kafka broker, about 15 minutes on 2 cores, and cargo-fuzz) start here in the background,
# at low priority, so they overlap with the Rust and browser sections; 30-intake.sh and
# 40-kafka.sh wait for them (scripts/ci/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

source scripts/ci/lib.sh
bg_install tansu tansu --locked --features dynostore
bg_install cargo-fuzz cargo-fuzz --locked
