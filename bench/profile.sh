#!/usr/bin/env bash
# Where `souk monolith`'s CPU goes under the mixed scenario: a release build, a fixed-rate load
# (`souk bench`), `perf record` of the shop's process meanwhile, and the samples split by
# component and thread (bench/profile.py). Needs perf (linux-perf) and permission to use it.
#
#   bench/profile.sh [--rate 500] [--seconds 10] [--scenario mixed] [--souk PATH]
set -euo pipefail
rate=500 seconds=10 scenario=mixed souk=
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --scenario) scenario=$2; shift 2 ;;
    --souk) souk=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$souk" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"
  souk="$target/release/souk"
fi
work=$(mktemp -d)
cp "$souk" "$work/souk"
export SOUK_ADMIN_EMAIL=bench-admin@example.com SOUK_ADMIN_PASSWORD="a long bench admin passphrase"
export SOUK_LOG=warn
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$work/souk" monolith --data-dir "$work/data" --port "$port" >"$work/monolith.log" 2>&1 &
shop=$!
cleanup() { kill -INT "$shop" 2>/dev/null; wait "$shop" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 600); do [ -f "$work/data/souk.json" ] && break; sleep 0.1; done
# The load runs past the recording on both sides: warm-up first, then perf.
"$work/souk" bench --data-dir "$work/data" --scenario "$scenario" --rate "$rate" \
  --duration "$((seconds + 15))s" --users 20 --report "$work/report" >"$work/bench.log" 2>&1 &
load=$!
sleep 10
perf record -q -F 999 -g -p "$shop" -o "$work/perf.data" -- sleep "$seconds"
wait "$load"
echo "souk monolith, $scenario at $rate/s, perf at 999 Hz for $seconds s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
grep -E "answered|reads \(all\)|targets" "$work/bench.log" || true
echo
perf script -i "$work/perf.data" -F comm,ip,sym,dso 2>/dev/null | python3 "$root/bench/profile.py"
