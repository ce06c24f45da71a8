#!/usr/bin/env bash
# What each order leaves behind, and what retention takes away (issue 16): `souk up` on SQLite,
# N one-line orders (bench/retention.py), the rows and bytes per order of every table measured
# with SQLite's dbstat (the databases' pages, indexes included); then the shop restarted with
# the retentions shortened to a second, so the purges run, and measured again. What remains then
# is kept for good (orders, payments, purchases…) or for days (reservations and payment
# tombstones: 30 days; they are not shortened here). A benchmark, not a test: it prints a report.
#
#   bench/retention.sh [--orders 200]
set -euo pipefail
n=200
while [ $# -gt 0 ]; do
  case "$1" in
    --orders) n=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"
else
  cargo build -q -p souk --manifest-path "$root/Cargo.toml"
fi
souk_bin="$target/$profile/souk"
export SOUK_ADMIN_EMAIL=bench-admin@example.com SOUK_ADMIN_PASSWORD="a long bench admin passphrase"
work=$(mktemp -d)
cleanup() {
  [ -n "${souk:-}" ] && kill -TERM "$souk" 2>/dev/null && wait "$souk" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
start() {
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  SOUK_LOG=warn "$souk_bin" up --quiet --data-dir "$work/data" --port "$port" >>"$work/souk.out" 2>&1 &
  souk=$!
  for _ in $(seq 600); do
    [ -f "$work/data/souk.json" ] && curl -sf "http://127.0.0.1:$port/api/v1/products?limit=1" >/dev/null && break
    sleep 0.1
  done
}
stop() { kill -TERM "$souk"; wait "$souk" || true; souk=; }
start
identity=$(curl -s "http://$(python3 -c "import json;print(json.load(open('$work/data/souk.json'))['control'])")/processes" \
  | python3 -c 'import json,sys; print([p["addr"] for p in json.load(sys.stdin) if p["service"]=="identity"][0])')
coproc DRIVER { python3 "$root/bench/retention.py" orders "127.0.0.1:$port" "$identity" "$SOUK_ADMIN_EMAIL" "$SOUK_ADMIN_PASSWORD" "$n"; }
read -r line <&"${DRIVER[0]}"; echo "$line"
sleep 3
python3 "$root/bench/retention.py" measure "$work/data" "$work/base.json"
echo >&"${DRIVER[1]}"
read -r line <&"${DRIVER[0]}"; echo "$line"
wait "$DRIVER_PID"
python3 "$root/bench/retention.py" measure "$work/data" "$work/before.json"
stop
python3 "$root/bench/retention.py" diff "$work/base.json" "$work/before.json" "$n" "before any purge (what every order left until now)"
# The same data, the retentions shortened to a second: every purge runs at start and each second.
for service in ORDERS PAYMENTS INVENTORY CART HISTORY; do
  export "SOUK_${service}__EVENTS__RETENTION__EVENTS_SECS=1" "SOUK_${service}__EVENTS__RETENTION__INBOX_SECS=1" \
         "SOUK_${service}__EVENTS__RETENTION__DEAD_LETTERS_SECS=1" "SOUK_${service}__EVENTS__RETENTION__PURGE_INTERVAL_SECS=1"
done
start
sleep 8
python3 "$root/bench/retention.py" measure "$work/data" "$work/after.json"
stop
python3 "$root/bench/retention.py" diff "$work/base.json" "$work/after.json" "$n" "after the purges (events, inbox entries, dead letters gone)"
