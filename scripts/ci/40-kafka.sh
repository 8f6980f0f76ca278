#!/usr/bin/env bash
# The `kafka` feature against a real Kafka-protocol broker (tansu on 127.0.0.1): installs what
# is missing (build tools for the bundled librdkafka, tansu itself), lints with the feature on,
# runs the Kafka tests (each starts and stops its own broker) and the example.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# librdkafka is built from source by rdkafka-sys (./configure + make, no cmake).
missing=()
for pkg in build-essential pkg-config zlib1g-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

source scripts/ci/lib.sh
bg_wait tansu || true
if ! command -v tansu >/dev/null 2>&1; then
  echo "installing tansu (once per machine; about 15 minutes on 2 cores)"
  cargo install tansu --locked --features dynostore
fi
command -v tansu

cargo clippy --workspace --all-targets --features testing,kafka -- -D warnings
cargo test --features testing,kafka --lib -- kafka usage_accountant
cargo test --features testing,kafka --test kafka
# The README's Kafka examples compile only with the feature.
cargo test --doc --features testing,kafka
cargo test -p beacon-intake --features testing,kafka --test kafka_sink

# The example, against a broker started here.
port=""
for p in $(seq 19092 19192); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "no free port for tansu"; exit 1; }
log=$(mktemp)
tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$log" 2>&1 &
tansu_pid=$!
trap 'kill "$tansu_pid" 2>/dev/null || true; wait "$tansu_pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$tansu_pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
for t in beacon-events beacon-logs shared-resources-usage; do
  ok=""
  for _ in $(seq 1 20); do
    if tansu topic create "$t" --partitions 3 --broker "tcp://127.0.0.1:$port" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.25
  done
  [ -n "$ok" ] || { echo "cannot create topic $t"; cat "$log"; exit 1; }
done
timeout 120 cargo run --features kafka --example kafka -- "127.0.0.1:$port"
