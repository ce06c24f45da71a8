#!/usr/bin/env bash
# Time to ready and idle memory of the whole shop in both topologies: `souk up` (a process per
# service) and `souk monolith` (one process). A first start (empty data dir: migrations, demo data,
# first signing key) and a second one (data kept). Prints a report; asserts nothing.
#
# Memory is given as RSS (what each process has resident, shared pages counted in every process
# that maps them: the `souk` binary's code, in each of `souk up`'s) and PSS (shared pages split
# among their sharers: summed over processes, each page counts once).
#
#   bench/up.sh [--souk PATH]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
souk=
if [ "${1:-}" = --souk ]; then souk=$2; fi
if [ -z "$souk" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"
  souk="$target/release/souk"
fi
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for topology in up monolith; do
  for start in first second; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    started=$(date +%s%N)
    "$souk" "$topology" --quiet --data-dir "$data/$topology" --port "$port" >"$data/$topology.out" 2>&1 &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/api/v1/categories" >/dev/null; do sleep 0.01; done
    ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))
    sleep 3
    echo "souk $topology, $start start: first answer through the gateway after $ready_ms ms"
    total=0 total_pss=0
    for p in $pid $(pgrep -P "$pid" || true); do
      kib=$(rss_kib "$p"); total=$((total + kib))
      pss=$(pss_kib "$p"); total_pss=$((total_pss + pss))
      printf '  %-40s %4d MiB idle RSS, %4d MiB PSS\n' "$(tr '\0' ' ' < "/proc/$p/cmdline" | cut -d' ' -f2-3)" $((kib / 1024)) $((pss / 1024))
    done
    echo "  total: $((total / 1024)) MiB RSS, $((total_pss / 1024)) MiB PSS"
    kill -TERM "$pid"; wait "$pid" || true
  done
done
