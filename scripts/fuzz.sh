#!/usr/bin/env bash
# The long fuzz: the prober's property tests (config loader, JSON-pointer and sequence
# extraction, timestamps, sequence tracker) with many more cases than the test command runs.
#   bash scripts/fuzz.sh              # 100,000 cases per property
#   PROPTEST_CASES=1000000 bash scripts/fuzz.sh
# A failure prints the shrunk input and saves its seed in
# probe/tests/properties.proptest-regressions (commit it, and add a plain regression test).
set -euo pipefail
cd "$(dirname "$0")/.."

export PROPTEST_CASES="${PROPTEST_CASES:-100000}"
# Shrinking a rare failure can take long; keep it bounded but generous.
export PROPTEST_MAX_SHRINK_ITERS="${PROPTEST_MAX_SHRINK_ITERS:-100000}"
echo "== wsmon-probe property tests, ${PROPTEST_CASES} cases each (release build)"
# Release with overflow checks: an arithmetic overflow must still fail the run.
RUSTFLAGS="${RUSTFLAGS:-} -C overflow-checks=on -C debug-assertions=on" \
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/fuzz}" \
  cargo test --release -p wsmon-probe --test properties -- --test-threads=2
