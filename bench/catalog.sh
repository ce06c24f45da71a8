#!/usr/bin/env bash
# Measures the catalog alone on SQLite: idle RSS, then requests/s and latency for a product page
# and a search, with wrk. A benchmark, not a test: run it on a quiet machine and read the report.
#
#   bench/catalog.sh [--duration 15s] [--connections 32] [--runs 3]
#
# It builds the release binary, starts souk-catalog on a free loopback port with a fresh SQLite
# database (the demo catalog), and stops it at the end. wrk comes from Debian's package.
set -euo pipefail

duration=15s connections=32 runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}

if ! command -v wrk >/dev/null; then
  echo "installing wrk from Debian's packages" >&2
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release -q -p souk-catalog --manifest-path "$root/Cargo.toml"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SOUK_CATALOG__LISTEN=127.0.0.1:$port \
SOUK_CATALOG__DATABASE__URL=sqlite://$work/catalog.db \
SOUK_LOG=warn \
  "$target/release/souk-catalog" >"$work/catalog.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT

for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "catalog did not become ready" >&2; cat "$work/catalog.log" >&2; exit 1; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

sleep 2
idle_rss=$(rss_kib)
id=$(curl -sf "http://127.0.0.1:$port/v1/products?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
echo "catalog pid $pid on 127.0.0.1:$port, SQLite, idle RSS $((idle_rss / 1024)) MiB ($idle_rss KiB)"
echo "wrk -t1 -c$connections -d$duration, $runs runs each, interleaved; medians below"
echo

declare -A rps p50 p99
measure() { # name path
  local out
  out=$(wrk -t1 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port$2")
  rps[$1]+="$(awk '/^Requests\/sec/ {print $2}' <<<"$out") "
  p50[$1]+="$(awk '$1 == "50%" {print $2}' <<<"$out") "
  p99[$1]+="$(awk '$1 == "99%" {print $2}' <<<"$out") "
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_ms() { # wrk prints 1.23ms, 456.00us or 1.01s
  tr ' ' '\n' | grep -v '^$' | awk '/ms$/ {sub("ms","");print;next} /us$/ {sub("us","");print $1/1000;next} /s$/ {sub("s","");print $1*1000}'
}

ticks_before=$(cpu_ticks)
for run in $(seq "$runs"); do
  measure product "/v1/products/$id"
  measure search "/v1/products?q=stainless%20steel&limit=20"
done
ticks_after=$(cpu_ticks)
loaded_rss=$(rss_kib)

printf '%-34s %12s %10s %10s\n' endpoint "req/s" "p50 ms" "p99 ms"
for name in product search; do
  path=$([ $name = product ] && echo "GET /v1/products/{id}" || echo "GET /v1/products?q=stainless steel")
  printf '%-34s %12s %10s %10s\n' "$path" \
    "$(median <<<"${rps[$name]}")" \
    "$(to_ms <<<"${p50[$name]}" | median)" \
    "$(to_ms <<<"${p99[$name]}" | median)"
done
echo
echo "RSS after load: $((loaded_rss / 1024)) MiB; catalog CPU during the runs: $(( (ticks_after - ticks_before) / $(getconf CLK_TCK) )) s"
