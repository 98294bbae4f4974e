#!/usr/bin/env bash
# Soak the demo set-up: `wsmon-probe demo` (feed + canary) and a `wsmon-probe daemon` (a canary
# on that feed, one on a server cycling through faults), with feed clients churning (20 new
# per second, leaving by close 1000/4001, abrupt drop, oversized message or stopping reading).
# Samples RSS, open fds and series count of both processes, and fails if any grows after
# warm-up (the first quarter, at least 20s). The test command runs the same test for 2 minutes.
#   bash scripts/soak.sh 30m                # duration: 90s, 10m, 1h ...; default 30m
#   SAMPLE_SECS=10 bash scripts/soak.sh 2h
# Writes the samples to target/soak/soak-<duration>.csv.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-30m}"
case "$duration" in
  *h) secs=$(( ${duration%h} * 3600 )) ;;
  *m) secs=$(( ${duration%m} * 60 )) ;;
  *s) secs=${duration%s} ;;
  *) secs=$duration ;;
esac
mkdir -p target/soak
csv="$PWD/target/soak/soak-${duration}.csv"
echo "== soak for ${secs}s, samples every ${SAMPLE_SECS:-5}s -> $csv"
WSMON_SOAK_SECS="$secs" WSMON_SOAK_SAMPLE_SECS="${SAMPLE_SECS:-5}" WSMON_SOAK_CSV="$csv" \
  cargo test --release -p wsmon-probe --test soak -- --nocapture
echo "== samples in $csv"
