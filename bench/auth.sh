#!/usr/bin/env bash
# What token checks and login limits cost: starts `souk up` (release build) on a free port with
# a fresh data dir, runs bench/auth.py against it, and stops it. A benchmark, not a test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$target/release/souk" up --quiet --data-dir "$data" --port "$port" >"$data/up.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 200); do [ -f "$data/souk.json" ] && break; sleep 0.05; done
control=$(python3 -c "import json; print(json.load(open('$data/souk.json'))['control'])")
gateway_pid=$(curl -sf -H "Authorization: Bearer $(cat $data/admin-token)" "http://$control/processes" | python3 -c 'import json,sys; print([p["pid"] for p in json.load(sys.stdin) if p["service"]=="gateway"][0])')
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
identity=$(curl -sf -H "Authorization: Bearer $(cat $data/admin-token)" "http://$control/processes" | python3 -c 'import json,sys; print([p["addr"] for p in json.load(sys.stdin) if p["service"]=="identity"][0])')
python3 "$root/bench/auth.py" "127.0.0.1:$port" "$gateway_pid" "$identity"
