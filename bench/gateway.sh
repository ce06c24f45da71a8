#!/usr/bin/env bash
# Measures souk-gateway against nginx and haproxy as a reverse proxy in front of one tiny
# upstream (souk-bench-upstream, a fixed 100-byte JSON answer), and the upstream alone. A
# benchmark, not a test: run it on a quiet machine and read the report.
#
#   bench/gateway.sh [--duration 10s] [--rounds 3] [--report FILE] [--gateway-threads 1]
#
# Each proxy gets one thread, as the issue's reference figures were taken (nginx with one worker,
# HAProxy with nbthread 1); --gateway-threads 0 gives souk-gateway one per core instead.
#
# A fifth target, hyper-floor (souk-bench-floor), is the least a proxy built on hyper and tokio can
# do — an upstream connection per client connection, headers passed as they came, no routing,
# timeouts, metrics or logs — so the report can tell what souk-gateway's features cost from what
# its stack costs.
#
# Every target is measured with `wrk -t1 -cC -dD --latency` at 64 and 256 connections; the
# targets take turns within each round (direct, hyper-floor, souk-gateway, nginx, haproxy) so that a noisy
# moment hurts them alike, and the report gives medians over the rounds. For each proxy it also
# gives the CPU time its processes spent per request (utime+stime from /proc, summed over the
# master and workers) and how many new connections per second it opened to the upstream, read
# from the upstream's own counter (GET /stats): near zero when the proxy keeps connections alive.
#
# wrk, nginx and haproxy come from Debian's packages, installed when missing. souk-gateway is
# skipped, with a message, while its package does not exist or does not build. Everything the
# script starts is stopped on exit; the report goes to stdout and to --report (default
# bench/results/gateway-DATE.md).
set -euo pipefail

duration=10s rounds=3 report="" gateway_threads=1
connections=(64 256)
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --gateway-threads) gateway_threads=$2; shift 2 ;;
    *) echo "unknown option $1 (options: --duration 10s, --rounds 3, --report FILE, --gateway-threads 1)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
report=${report:-$root/bench/results/gateway-$(date +%Y-%m-%d-%H%M).md}

# --- tools and binaries -------------------------------------------------------------------

missing=()
for tool in wrk nginx haproxy; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages" >&2
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

has_gateway=$(cargo metadata --no-deps --format-version 1 --manifest-path "$root/Cargo.toml" |
  python3 -c 'import json, sys; print(any(p["name"] == "souk-gateway" for p in json.load(sys.stdin)["packages"]))')
gateway=no gateway_note=""
if [ "$has_gateway" = True ]; then
  # Built on its own so that a gateway still being written does not stop the other targets.
  if cargo build --release -q -p souk-bench-upstream -p souk-gateway --manifest-path "$root/Cargo.toml"; then
    gateway=yes
  else
    gateway_note="souk-gateway not built: skipped (its build failed)"
    echo "$gateway_note, errors above" >&2
  fi
else
  gateway_note="souk-gateway not built: skipped (no such package in the workspace)"
  echo "$gateway_note" >&2
fi
[ "$gateway" = yes ] || cargo build --release -q -p souk-bench-upstream --manifest-path "$root/Cargo.toml"

# --- helpers ------------------------------------------------------------------------------

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports, all bound at once so that they differ.
free_ports() {
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

wait_ready() { # name url log pid
  for _ in $(seq 100); do
    curl -sf -o /dev/null "$2" && return 0
    kill -0 "$4" 2>/dev/null || break
    sleep 0.1
  done
  echo "$1 did not answer $2 within 10 s, or exited; its log:" >&2
  tail -n 20 "$3" >&2
  return 1
}

clk_tck=$(getconf CLK_TCK)
# utime+stime (or with --user, utime only), in clock ticks, of the given processes and their
# children (nginx's workers).
cpu_ticks() {
  local fields='$12 + $13'
  if [ "$1" = --user ]; then fields='$12'; shift; fi
  local pid all=()
  for pid in "$@"; do
    all+=("$pid")
    while read -r child; do all+=("$child"); done < <(ps -o pid= --ppid "$pid")
  done
  # The command name in field 2 may hold spaces: count the fields after its closing parenthesis.
  for pid in "${all[@]}"; do cat "/proc/$pid/stat" 2>/dev/null || true; done |
    awk "{ sub(/^.*\\) /, \"\"); total += $fields } END { print total + 0 }"
}

upstream_connections() {
  curl -sf "http://127.0.0.1:$upstream_port/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["connections"])'
}

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : "-") }'; }
to_ms() { # wrk prints 456.00us, 1.23ms or 1.01s
  awk '/us$/ { print $1 / 1000; next } /ms$/ { print $1 + 0; next } /s$/ { print $1 * 1000 }'
}
to_seconds() { # wrk prints 10.00s or 1.00m
  awk '/ms$/ { print $1 / 1000; next } /s$/ { print $1 + 0; next } /m$/ { print $1 * 60 }'
}

# --- start the upstream and the proxies -----------------------------------------------------

"$target/release/souk-bench-upstream" >"$work/upstream.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  upstream_port=$(awk 'NR == 1 && /^listening on / { n = split($3, a, ":"); print a[n] }' "$work/upstream.log")
  [ -n "$upstream_port" ] && break
  sleep 0.1
done
[ -n "$upstream_port" ] || { echo "the upstream did not start:" >&2; cat "$work/upstream.log" >&2; exit 1; }
wait_ready upstream "http://127.0.0.1:$upstream_port/readyz" "$work/upstream.log" "${pids[0]}"

read -r gateway_port admin_port nginx_port haproxy_port floor_port <<<"$(free_ports 5)"
declare -A url proxy_pid
targets=(direct)
url[direct]=http://127.0.0.1:$upstream_port/

"$target/release/souk-bench-floor" --listen "127.0.0.1:$floor_port" --upstream "127.0.0.1:$upstream_port" >"$work/floor.log" 2>&1 &
pids+=($!)
proxy_pid[hyper-floor]=$!
url[hyper-floor]=http://127.0.0.1:$floor_port/
wait_ready hyper-floor "${url[hyper-floor]}" "$work/floor.log" "${proxy_pid[hyper-floor]}"
targets+=(hyper-floor)

if [ "$gateway" = yes ]; then
  cat >"$work/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$gateway_port"
admin_listen = "127.0.0.1:$admin_port"
threads = $gateway_threads  # 1 by default, like nginx's one worker and haproxy's one thread
access_log = true
max_connections_per_address = 4096  # wrk's connections all come from one address

[[routes]]
name = "bench"
prefix = "/"
upstream = "bench"

[upstreams.bench]
endpoints = ["127.0.0.1:$upstream_port"]
EOF
  # The access log goes to a real file, so writing it is part of what is measured.
  "$target/release/souk-gateway" --config "$work/gateway.toml" >"$work/gateway.log" 2>&1 &
  pids+=($!)
  proxy_pid[souk-gateway]=$!
  url[souk-gateway]=http://127.0.0.1:$gateway_port/
  if wait_ready souk-gateway "${url[souk-gateway]}" "$work/gateway.log" "${proxy_pid[souk-gateway]}"; then
    targets+=(souk-gateway)
  else
    gateway_note="souk-gateway did not answer within 10 s: skipped"
    echo "$gateway_note" >&2
  fi
fi

# keepalive_requests: nginx closes a kept-alive connection after 1000 requests by default, on
# both sides; lifted so that nginx, like the others, reuses its connections for the whole run.
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  upstream up {
    server 127.0.0.1:$upstream_port;
    keepalive 512;
    keepalive_requests 100000000;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log" -g 'daemon off;' >"$work/nginx.log" 2>&1 &
pids+=($!)
proxy_pid[nginx]=$!
url[nginx]=http://127.0.0.1:$nginx_port/
wait_ready nginx "${url[nginx]}" "$work/nginx-error.log" "${proxy_pid[nginx]}"
targets+=(nginx)

cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend bench
  bind 127.0.0.1:$haproxy_port
  default_backend up
backend up
  server up 127.0.0.1:$upstream_port
EOF
haproxy -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
proxy_pid[haproxy]=$!
url[haproxy]=http://127.0.0.1:$haproxy_port/
wait_ready haproxy "${url[haproxy]}" "$work/haproxy.log" "${proxy_pid[haproxy]}"
targets+=(haproxy)

# --- measure ------------------------------------------------------------------------------

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "machine: $(nproc) cores, load average $load_before before the run"
if awk -v l="${load_before%% *}" 'BEGIN { exit !(l > 0.5) }'; then
  echo "warning: the 1-minute load average is ${load_before%% *} (> 0.5): the numbers will be noisy" >&2
fi
echo "targets: ${targets[*]}; wrk -t1 -d$duration --latency at ${connections[*]} connections, $rounds round(s), interleaved"

declare -A rps p50 p99 cpu user fresh
warnings=()
measure() { # target connections
  local name=$1 c=$2 key="$1 $2" out requests seconds ticks0 ticks1 user0 user1 conns0 conns1 pid=()
  [ "$name" = direct ] || pid=("${proxy_pid[$name]}")
  conns0=$(upstream_connections)
  [ ${#pid[@]} -eq 0 ] || { ticks0=$(cpu_ticks "${pid[@]}"); user0=$(cpu_ticks --user "${pid[@]}"); }
  out=$(wrk -t1 -c"$c" -d"$duration" --latency "${url[$name]}")
  [ ${#pid[@]} -eq 0 ] || { ticks1=$(cpu_ticks "${pid[@]}"); user1=$(cpu_ticks --user "${pid[@]}"); }
  conns1=$(upstream_connections)

  requests=$(awk '/ requests in / { print $1 }' <<<"$out")
  seconds=$(awk '/ requests in / { sub(",", "", $4); print $4 }' <<<"$out" | to_seconds)
  if [ -z "$requests" ] || [ "$requests" -eq 0 ]; then
    warnings+=("$name at $c connections: wrk completed no request")
    return
  fi
  rps[$key]+="$(awk '/^Requests\/sec/ { print $2 }' <<<"$out") "
  p50[$key]+="$(awk '$1 == "50%" { print $2 }' <<<"$out" | to_ms) "
  p99[$key]+="$(awk '$1 == "99%" { print $2 }' <<<"$out" | to_ms) "
  [ ${#pid[@]} -eq 0 ] ||
    cpu[$key]+="$(awk -v t=$((ticks1 - ticks0)) -v hz="$clk_tck" -v n="$requests" 'BEGIN { print t / hz * 1e6 / n }') "
  [ ${#pid[@]} -eq 0 ] ||
    user[$key]+="$(awk -v t=$((user1 - user0)) -v hz="$clk_tck" -v n="$requests" 'BEGIN { print t / hz * 1e6 / n }') "
  # The /stats request after the run is itself one new connection.
  fresh[$key]+="$(awk -v d=$((conns1 - conns0 - 1)) -v s="$seconds" 'BEGIN { print d / s }') "

  local errors
  errors=$(grep -E '^ *(Socket errors|Non-2xx)' <<<"$out" | sed 's/^ *//' | paste -sd ';' || true)
  [ -z "$errors" ] || warnings+=("$name at $c connections: $errors")
}

for round in $(seq "$rounds"); do
  for c in "${connections[@]}"; do
    for name in "${targets[@]}"; do
      echo "round $round/$rounds: $name, $c connections" >&2
      measure "$name" "$c"
    done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report -------------------------------------------------------------------------------

table() {
  echo "| target | conns | req/s | p50 ms | p99 ms | CPU µs/req | of which user | new upstream conns/s |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  local c name key
  for c in "${connections[@]}"; do
    for name in "${targets[@]}"; do
      key="$name $c"
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$c" \
        "$(median <<<"${rps[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.0f\n", $1 }')" \
        "$(median <<<"${p50[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.2f\n", $1 }')" \
        "$(median <<<"${p99[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.2f\n", $1 }')" \
        "$(median <<<"${cpu[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.1f\n", $1 }')" \
        "$(median <<<"${user[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.1f\n", $1 }')" \
        "$(median <<<"${fresh[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.1f\n", $1 }')"
    done
  done
  echo
  for c in "${connections[@]}"; do
    local direct line=""
    direct=$(median <<<"${rps[direct $c]:-}")
    for name in "${targets[@]}"; do
      [ "$name" = direct ] && continue
      line+="$(awk -v n="$name" -v r="$(median <<<"${rps[$name $c]:-}")" -v d="$direct" \
        'BEGIN { if (r == "-" || d == "-" || d == 0) printf "%s -, ", n; else printf "%s %.2f, ", n, r / d }')"
    done
    echo "- req/s as a fraction of direct at $c connections: ${line%, }"
  done
}

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain 2>/dev/null)" ] || commit+=" (uncommitted changes)"
{
  echo "# souk-gateway benchmark, $(date '+%Y-%m-%d %H:%M')"
  echo
  echo "- machine: $(nproc) cores; load average $load_before before, $load_after after"
  echo "- commit $commit; $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), $(haproxy -v | head -n1 | cut -d' ' -f1,3)"
  echo "- wrk -t1 -d$duration --latency, $rounds round(s) interleaved (${targets[*]}), medians over rounds"
  echo "- upstream: souk-bench-upstream, 1 thread, 100-byte JSON body; CPU µs/req is the proxy's own (utime+stime of all its processes)"
  echo "- proxies: souk-gateway threads = $gateway_threads (0 = one per core), nginx worker_processes 1, haproxy nbthread 1; souk-gateway with routing, metrics, access log to a file and health checks on; hyper-floor = souk-bench-floor, the least a hyper proxy does (no features: its stack's cost)"
  [ -z "$gateway_note" ] || echo "- $gateway_note"
  for warning in "${warnings[@]}"; do echo "- warning: $warning"; done
  echo
  table
  echo
  echo "req/s in each round, in run order:"
  echo
  for c in "${connections[@]}"; do
    for name in "${targets[@]}"; do echo "- $name, $c connections: ${rps[$name $c]:-none}"; done
  done
} >"$work/report.md"

mkdir -p "$(dirname "$report")"
cp "$work/report.md" "$report"
echo
cat "$report"
echo
echo "report written to $report"
