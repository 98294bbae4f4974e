#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), then runs every test.
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The proxy-edge scenario: real proxies between prober and feed, and network namespaces
# (ip, tc tbf) with an iptables DROP. The tests start nginx and haproxy with their own
# configs; the packages' services are stopped so no default site listens.
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v tc >/dev/null 2>&1 || need_apt+=(iproute2)
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
for service in nginx haproxy; do
  if command -v service >/dev/null 2>&1 && service "$service" status >/dev/null 2>&1; then
    service "$service" stop >/dev/null 2>&1 || true
  fi
done

if ! python3 -c 'import websockets' >/dev/null 2>&1; then
  log "installing Python websockets (foreign client for the tests)"
  python3 -m pip install --quiet --disable-pip-version-check 'websockets>=12'
fi

if [ ! -d proxy/tests/foreign/node_modules/ws ]; then
  command -v npm >/dev/null 2>&1 || need_npm=1
  if [ -n "${need_npm:-}" ]; then
    log "installing Node.js and npm (foreign peers for the proxy tests)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  log "installing Node ws (foreign peers for the proxy tests)"
  (cd proxy/tests/foreign && npm ci --no-audit --no-fund --silent)
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo doc (rustdoc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --all-features

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo package (every publishable crate, as crates.io would receive it)"
# Packaged together, so each crate resolves its workspace dependencies from the others'
# .crate files rather than from crates.io, where they are not yet published.
cargo package --workspace --exclude wsmon-bench --exclude wsmon-tests --exclude wsmon-testkit \
  --no-verify --allow-dirty --quiet

log "cargo build (the binaries and examples that tests start as processes)"
# `cargo test` builds examples only as test harnesses; the tests run the real feed binary.
cargo build --workspace --bins --examples

log "cargo test (workspace)"
# Two test threads per binary keep socket-heavy tests from starving each other on 2 cores.
cargo test --workspace --all-targets -- --test-threads=2

log "cargo test --doc (the examples in the API docs)"
# `--all-targets` leaves doctests out; they are the first code an adopter copies.
cargo test --workspace --doc --quiet
