#!/usr/bin/env bash
# The intake (intake/). Its tests run in 10-rust.sh (`cargo test --workspace` builds the
# `beacon` binary and runs intake/tests/ against it on 127.0.0.1). This section adds a brief
# fuzz run of the body decoder, parser and validator (intake/fuzz, target parse_body).
#
# cargo-fuzz needs nightly flags; the machine has only the stable toolchain, so the build
# runs with RUSTC_BOOTSTRAP=1. FUZZ_SECONDS sets the length (default 30).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/ci/lib.sh
bg_wait cargo-fuzz || cargo install cargo-fuzz --locked
cd intake/fuzz
mkdir -p corpus/parse_body
RUSTC_BOOTSTRAP=1 cargo fuzz run parse_body corpus/parse_body seeds/parse_body -- \
  -max_total_time="${FUZZ_SECONDS:-30}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
