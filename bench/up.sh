#!/usr/bin/env bash
# Time to ready and idle memory of the whole shop in both topologies: `souk up` (a process per
# service) and `souk monolith` (one process). A first start (empty data dir: migrations, demo data,
# first signing key) and a second one (data kept). Prints a report; asserts nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"
souk="$target/release/souk"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
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
    total=0
    for p in $pid $(pgrep -P "$pid" || true); do
      kib=$(rss_kib "$p"); total=$((total + kib))
      printf '  %-40s %4d MiB idle RSS\n' "$(tr '\0' ' ' < "/proc/$p/cmdline" | cut -d' ' -f2-3)" $((kib / 1024))
    done
    echo "  total: $((total / 1024)) MiB"
    kill -TERM "$pid"; wait "$pid" || true
  done
done
