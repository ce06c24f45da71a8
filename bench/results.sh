#!/usr/bin/env bash
# Every figure of RESULTS.md, measured again on this machine with a release build of `souk`:
#   1. souk bench --compare: monolith vs microservices on the mixed scenario at a ladder of
#      rates (interleaved rounds, medians), then each topology climbing on from the highest rate
#      it met, 10 % higher a step until one misses the targets (--climb), then catalog at 1, 2,
#      3 instances. The load generator's own CPU is reported beside the shop's;
#   2. souk chaos on a fresh `souk up`: payments killed for 10 s, inventory slowed by 2 s.
# Writes the reports under bench/results/latest/ and rewrites RESULTS.md from them.
#
#   bench/results.sh [--rates 250,500,1000] [--climb 10] [--rounds 3] [--duration 8s] [--catalog-instances 1,2,3]
set -euo pipefail
rates=250,500,1000 climb=10 rounds=3 duration=8s instances=1,2,3
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) rates=$2; shift 2 ;;
    --climb) climb=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --catalog-instances) instances=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"
work=$(mktemp -d)
# A copy: a rebuild while this runs must not pull the binary from under the supervisor.
cp "$target/release/souk" "$work/souk"
souk="$work/souk"
out="$root/bench/results/latest"
rm -rf "$out" && mkdir -p "$out"
export SOUK_ADMIN_EMAIL=bench-admin@example.com SOUK_ADMIN_PASSWORD="a long bench admin passphrase"
export SOUK_LOG=warn
shop=
cleanup() {
  [ -n "$shop" ] && kill -TERM "$shop" 2>/dev/null && wait "$shop" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
busy() { # load average, and the other processes using the CPU at this moment
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg); busiest other processes: $(ps -eo pcpu,comm --sort=-pcpu --no-headers | awk '$1 > 5 {printf "%s %s%%, ", $2, $1}' | head -c 300)"
}
echo "$(busy)" > "$out/busy-before.txt"
started=$(date -u +%FT%TZ)

"$souk" bench --compare --scenario mixed --rates "$rates" --climb "$climb" --rounds "$rounds" --duration "$duration" \
  --catalog-instances "$instances" --users 20 --report "$out/compare" | tee "$out/compare.log"
echo "$(busy)" > "$out/busy-after-compare.txt"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$souk" up --quiet --data-dir "$work/up" --port "$port" >"$work/up.log" 2>&1 &
shop=$!
for _ in $(seq 600); do [ -f "$work/up/souk.json" ] && break; sleep 0.1; done
# The whole shop idle: every process of `souk up` (the supervisor and its children), RSS and PSS.
until curl -sf "http://127.0.0.1:$port/api/v1/categories" >/dev/null; do sleep 0.1; done
sleep 5
python3 - "$shop" > "$out/idle-memory.json" <<'PY'
import json, os, sys
root = int(sys.argv[1])
def children(pid):
    # Each thread lists the children it started: the supervisor starts them from any thread.
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found
def kib(path, key):
    with open(path) as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key))
processes, todo = {}, [root]
while todo:
    pid = todo.pop()
    todo += children(pid)
    cmd = open(f"/proc/{pid}/cmdline").read().split("\0")
    status = f"/proc/{pid}/status"
    # RSS is the process's own (anonymous) pages plus the file's pages it maps: the `souk`
    # binary's, shared by every process of the shop but counted in each one's RSS.
    processes[" ".join(cmd[1:3])] = {"rss_mib": kib(status, "VmRSS:") / 1024,
                                    "anon_mib": kib(status, "RssAnon:") / 1024,
                                    "file_mib": (kib(status, "RssFile:") + kib(status, "RssShmem:")) / 1024,
                                    "pss_mib": kib(f"/proc/{pid}/smaps_rollup", "Pss:") / 1024}
print(json.dumps({"processes": processes,
                  **{key: sum(p[key] for p in processes.values())
                     for key in ("rss_mib", "anon_mib", "file_mib", "pss_mib")}}))
PY
"$souk" chaos --kill payments --at 10s --for 10s --duration 30s --scenario mixed --rate 100 \
  --users 20 --data-dir "$work/up" --report "$out/chaos-kill-payments" | tee "$out/chaos-kill-payments.log"
"$souk" chaos --delay inventory=2000 --at 10s --for 10s --duration 30s --scenario browse --rate 50 \
  --users 5 --data-dir "$work/up" --report "$out/chaos-delay-inventory" | tee "$out/chaos-delay-inventory.log"
echo "$(busy)" > "$out/busy-after.txt"

python3 "$root/bench/results.py" "$out" "$started" "$(git -C "$root" rev-parse --short HEAD)" > "$root/RESULTS.md"
echo "wrote $root/RESULTS.md"
