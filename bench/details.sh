#!/usr/bin/env bash
# The product page, the shop's most-visited one: what the gateway's aggregation costs. Under
# `souk up` (a process per service) it measures, with wrk, interleaved runs of
#   catalog   GET /v1/products/{id} on the catalog itself (no gateway)
#   proxied   GET /api/v1/products/{id} through the gateway (one upstream)
#   details   GET /api/v1/products/{id}/details through the gateway (catalog + inventory in parallel)
# and reports req/s, p50/p99 (medians of the runs) and the CPU each process spent per request
# (from /proc, over the runs of that scenario). A benchmark, not a test: it asserts nothing.
#
#   bench/details.sh [--duration 10s] [--connections 32] [--runs 3]
set -euo pipefail

duration=10s connections=32 runs=3
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
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SOUK_LOG=warn "$target/release/souk" up --quiet --data-dir "$work" --port "$port" >"$work/souk.out" 2>&1 &
souk=$!
trap 'kill -TERM $souk 2>/dev/null; wait $souk 2>/dev/null; rm -rf "$work"' EXIT

gw="http://127.0.0.1:$port"
for _ in $(seq 300); do curl -sf "$gw/api/v1/categories" >/dev/null && break; sleep 0.1; done
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
id=$(curl -sf "$gw/api/v1/products?limit=1" | json 'd["items"][0]["id"]')
for _ in $(seq 200); do
  [ "$(curl -sf "$gw/api/v1/products/$id/details" | json 'd["degraded"] == [] and d["availability"] is not None')" = True ] && break
  sleep 0.1
done
control=$(json 'd["control"]' <"$work/souk.json")
processes=$(curl -sf -H "Authorization: Bearer $(cat $work/admin-token)" "http://$control/processes")
pid_of() { json "[p['pid'] for p in d if p['service'] == '$1'][0]" <<<"$processes"; }
catalog_addr=$(json "[p['addr'] for p in d if p['service'] == 'catalog'][0]" <<<"$processes")
declare -A pids=([gateway]=$(pid_of gateway) [catalog]=$(pid_of catalog) [inventory]=$(pid_of inventory))

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
echo "souk up on $gw; wrk -t1 -c$connections -d$duration, $runs runs each, interleaved; medians"
echo

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A rps p50 p99 requests cpu
measure() { # scenario url
  local before=() out i=0 p
  for p in gateway catalog inventory; do before[i]=$(ticks "${pids[$p]}"); i=$((i + 1)); done
  out=$(wrk -t1 -c"$connections" -d"$duration" --latency "$2")
  i=0
  for p in gateway catalog inventory; do
    cpu[$1.$p]=$(( ${cpu[$1.$p]:-0} + $(ticks "${pids[$p]}") - before[i] )); i=$((i + 1))
  done
  rps[$1]+="$(awk '/^Requests\/sec/ {print $2}' <<<"$out") "
  p50[$1]+="$(awk '$1 == "50%" {print $2}' <<<"$out") "
  p99[$1]+="$(awk '$1 == "99%" {print $2}' <<<"$out") "
  requests[$1]=$(( ${requests[$1]:-0} + $(awk '/requests in/ {print $1}' <<<"$out") ))
  grep -q "Non-2xx" <<<"$out" && echo "warning: $1 had non-2xx answers: $(grep Non-2xx <<<"$out")" >&2 || true
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_ms() { tr ' ' '\n' | grep -v '^$' | awk '/ms$/ {sub("ms","");print;next} /us$/ {sub("us","");print $1/1000;next} /s$/ {sub("s","");print $1*1000}'; }

for _ in $(seq "$runs"); do
  measure catalog "http://$catalog_addr/v1/products/$id"
  measure proxied "$gw/api/v1/products/$id"
  measure details "$gw/api/v1/products/$id/details"
done

hz=$(getconf CLK_TCK)
us_per() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }'; }
printf '%-10s %10s %8s %8s   %s\n' scenario "req/s" "p50 ms" "p99 ms" "CPU µs per request: gateway / catalog / inventory / total"
for s in catalog proxied details; do
  n=${requests[$s]}
  g=$(us_per "${cpu[$s.gateway]}" "$n"); c=$(us_per "${cpu[$s.catalog]}" "$n"); i=$(us_per "${cpu[$s.inventory]}" "$n")
  total=$(us_per $(( cpu[$s.gateway] + cpu[$s.catalog] + cpu[$s.inventory] )) "$n")
  printf '%-10s %10s %8s %8s   %s / %s / %s / %s\n' "$s" "$(median <<<"${rps[$s]}")" \
    "$(to_ms <<<"${p50[$s]}" | median)" "$(to_ms <<<"${p99[$s]}" | median)" "$g" "$c" "$i" "$total"
done
echo
echo "(wrk runs on the same cores and its CPU is not counted; the catalog's is the catalog's answer,"
echo " inventory's the availability part. Compare ratios within one run, not across machines.)"
