#!/usr/bin/env bash
# The whole test suite. Installs what the tests need on a fresh machine (skipping what is
# already there), then runs every section in scripts/ci/ in order.
set -euo pipefail
cd "$(dirname "$0")/.."
for section in scripts/ci/[0-9]*.sh; do
  echo "==== $section"
  start=$(date +%s)
  bash "$section"
  echo "==== $section done in $(( $(date +%s) - start )) s"
done
