#!/usr/bin/env bash
# Checkout end to end under `souk up`, on SQLite and then on PostgreSQL (+ Redis for carts):
# checkouts per second, p50/p99 from POST /api/v1/orders to confirmed, and the event lag to the
# purchase history (bench/checkout.py). A benchmark, not a test: it prints a report.
#
#   bench/checkout.sh [--users 8] [--duration 20] [--backends "embedded postgres"]
#
# PostgreSQL is SOUK_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres); its
# databases are made under a prefix of their own and dropped at the end.
set -euo pipefail
users=8 duration=20 backends="embedded postgres"
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --backends) backends=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"
export SOUK_POSTGRES_URL=${SOUK_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export SOUK_POSTGRES_DATABASE_PREFIX="souk_bench_$$_"
export SOUK_ADMIN_EMAIL=bench-admin@example.com SOUK_ADMIN_PASSWORD="a long bench admin passphrase"
work=$(mktemp -d)
cleanup() {
  [ -n "${souk:-}" ] && kill -TERM "$souk" 2>/dev/null && wait "$souk" 2>/dev/null
  for db in identity catalog inventory cart payments orders history; do
    psql "$SOUK_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS ${SOUK_POSTGRES_DATABASE_PREFIX}$db WITH (FORCE)" 2>/dev/null || true
  done
  redis-cli --scan --pattern "${SOUK_POSTGRES_DATABASE_PREFIX}cart:*" | xargs -r redis-cli del >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for backend in $backends; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  SOUK_LOG=warn "$target/release/souk" up --quiet --backend "$backend" --data-dir "$work/$backend" --port "$port" >"$work/$backend.out" 2>&1 &
  souk=$!
  for _ in $(seq 300); do [ -f "$work/$backend/souk.json" ] && break; sleep 0.1; done
  control=$(python3 -c "import json; print(json.load(open('$work/$backend/souk.json'))['control'])")
  identity=$(curl -sf -H "Authorization: Bearer $(cat $work/$backend/admin-token)" "http://$control/processes" | python3 -c "import json,sys; print([p['addr'] for p in json.load(sys.stdin) if p['service'] == 'identity'][0])")
  echo
  echo "== souk up --backend $backend"
  python3 "$root/bench/checkout.py" "127.0.0.1:$port" "$identity" "$SOUK_ADMIN_EMAIL" "$SOUK_ADMIN_PASSWORD" \
    --users "$users" --duration "$duration"
  kill -TERM "$souk"; wait "$souk" || true; souk=
done
