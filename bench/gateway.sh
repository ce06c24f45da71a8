#!/usr/bin/env bash
# Measures souk-gateway against nginx and haproxy as a reverse proxy in front of one tiny
# upstream (souk-bench-upstream, a fixed 100-byte JSON answer), and the upstream alone. A
# benchmark, not a test: run it on a quiet machine and read the report.
#
#   bench/gateway.sh [--duration 10s] [--rounds 3] [--report FILE] [--gateway-threads 1]
#                    [--instructions 3000] [--rate 20000] [--rate-clients 50]
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
# targets take turns within each round, and each round starts one target further along the list,
# so that a noisy moment, or going first, hurts them alike; the report gives medians over the
# rounds, with the load average and the steal time (CPU taken by the host) of each round.
#
# nginx and HAProxy run twice: as bare proxies, and doing the same work as souk-gateway on each
# request ("same work": an access log written to a file, X-Forwarded-For and a request id added).
#
# A fixed-rate run follows in each round (h2load, from Debian's nghttp2-client, which paces each
# client's requests, wrk2-style): every proxy is offered the same --rate requests per second over
# --rate-clients kept-alive connections, so CPU per request compares at equal throughput rather
# than at each proxy's own peak, where a faster proxy also pays for more wake-ups per batch.
# h2load gives no percentiles: the table gives its mean and max time per request.
#
# Times are noisy on a shared machine; instructions are not. The last phase counts the user-space
# instructions each proxy executes per request under valgrind's callgrind (perf's counters are
# not available on every machine): each proxy is started again under callgrind, warmed up, its
# counters zeroed, then --instructions requests are sent over 4 kept-alive connections and its
# counters dumped; 0 skips the phase. For each proxy it also
# gives the CPU time its processes spent per request (utime+stime from /proc, summed over the
# master and workers) and how many new connections per second it opened to the upstream, read
# from the upstream's own counter (GET /stats): near zero when the proxy keeps connections alive.
#
# wrk, nginx and haproxy come from Debian's packages, installed when missing. souk-gateway is
# skipped, with a message, while its package does not exist or does not build. Everything the
# script starts is stopped on exit; the report goes to stdout and to --report (default
# bench/results/gateway-DATE.md).
set -euo pipefail

duration=10s rounds=3 report="" gateway_threads=1 instructions=3000 rate=20000 rate_clients=50
connections=(64 256)
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --gateway-threads) gateway_threads=$2; shift 2 ;;
    --instructions) instructions=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --rate-clients) rate_clients=$2; shift 2 ;;
    *) echo "unknown option $1 (options: --duration 10s, --rounds 3, --report FILE, --gateway-threads 1, --instructions 3000, --rate 20000 (0 skips the fixed-rate run), --rate-clients 50)" >&2; exit 2 ;;
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
[ "$rate" -eq 0 ] || command -v h2load >/dev/null || missing+=(nghttp2-client)
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

# The same work as souk-gateway's on every request: an access log line written to a file, the
# client's address in X-Forwarded-For and a request id sent upstream.
read -r nginx_same_port haproxy_same_port <<<"$(free_ports 2)"
sed -e "s|access_log off;|access_log $work/nginx-same-access.log;|" \
    -e "s|listen 127.0.0.1:$nginx_port;|listen 127.0.0.1:$nginx_same_port;|" \
    -e "s|pid $work/nginx.pid;|pid $work/nginx-same.pid;|" \
    -e "s|proxy_set_header Connection \"\";|proxy_set_header Connection \"\"; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Request-Id \$request_id;|" \
    "$work/nginx.conf" >"$work/nginx-same.conf"
nginx -c "$work/nginx-same.conf" -p "$work" -e "$work/nginx-same-error.log" -g 'daemon off;' >"$work/nginx-same.log" 2>&1 &
pids+=($!)
proxy_pid[nginx-same]=$!
url[nginx-same]=http://127.0.0.1:$nginx_same_port/
wait_ready nginx-same "${url[nginx-same]}" "$work/nginx-same-error.log" "${proxy_pid[nginx-same]}"
targets+=(nginx-same)

# HAProxy logs to syslog only: a datagram socket of a tiny reader appends the lines to a file.
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as f:
    while True: f.write(s.recv(65536) + b"\n")' "$work/haproxy-log.sock" "$work/haproxy-same-access.log" &
pids+=($!)
sed -e "s|bind 127.0.0.1:$haproxy_port|bind 127.0.0.1:$haproxy_same_port|" \
    -e "s|^global|global\n  log $work/haproxy-log.sock local0|" \
    -e "s|^defaults|defaults\n  log global\n  option httplog\n  option forwardfor\n  unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid|" \
    -e "s|^frontend bench|frontend bench\n  http-request set-header X-Request-Id %[unique-id]|" \
    "$work/haproxy.cfg" >"$work/haproxy-same.cfg"
for _ in $(seq 50); do [ -S "$work/haproxy-log.sock" ] && break; sleep 0.1; done
haproxy -f "$work/haproxy-same.cfg" >"$work/haproxy-same.log" 2>&1 &
pids+=($!)
proxy_pid[haproxy-same]=$!
url[haproxy-same]=http://127.0.0.1:$haproxy_same_port/
wait_ready haproxy-same "${url[haproxy-same]}" "$work/haproxy-same.log" "${proxy_pid[haproxy-same]}"
targets+=(haproxy-same)

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

steal_ticks() { awk '$1 == "cpu" { print $9 }' /proc/stat; }

# The fixed-rate run of one proxy: h2load offers $rate requests/s in all, paced per connection.
declare -A fixed_rps fixed_mean fixed_max fixed_cpu fixed_user
per_client=$(( (rate + rate_clients - 1) / rate_clients ))
measure_fixed() { # target
  local name=$1 out done_ ticks0 ticks1 user0 user1 pid=("${proxy_pid[$1]}") seconds
  ticks0=$(cpu_ticks "${pid[@]}"); user0=$(cpu_ticks --user "${pid[@]}")
  out=$(h2load --h1 -t1 -c"$rate_clients" --rps="$per_client" -D "$duration" "${url[$name]}" 2>&1)
  ticks1=$(cpu_ticks "${pid[@]}"); user1=$(cpu_ticks --user "${pid[@]}")
  # "requests: 200000 total, 200050 started, 200000 done, 200000 succeeded, 0 failed, 0 errored, 0 timeout"
  done_=$(awk '/^requests:/ { print $8 }' <<<"$out")
  seconds=$(awk '/^finished in/ { sub("s,", "", $3); print $3 }' <<<"$out")
  if [ -z "$done_" ] || [ "$done_" -eq 0 ]; then
    warnings+=("$name at a fixed $rate req/s: h2load completed no request ($(tail -n1 <<<"$out"))")
    return
  fi
  local failed
  # "status codes: 200000 2xx, 0 3xx, 0 4xx, 0 5xx": the failures and the answers not 2xx.
  failed=$(awk '/^requests:/ { f = $10 + $12 + $14 } /^status codes:/ { f += $5 + $7 + $9 } END { print f + 0 }' <<<"$out")
  [ "$failed" -eq 0 ] || warnings+=("$name at a fixed $rate req/s: $(grep -E '^(requests|status codes):' <<<"$out" | paste -sd ';')")
  fixed_rps[$name]+="$(awk -v n="$done_" -v s="$seconds" 'BEGIN { print n / s }') "
  # "time for request:   123us   4.56ms   345us  ..." : min, max, mean, sd
  fixed_max[$name]+="$(awk '/^time for request:/ { print $5 }' <<<"$out" | to_ms) "
  fixed_mean[$name]+="$(awk '/^time for request:/ { print $6 }' <<<"$out" | to_ms) "
  fixed_cpu[$name]+="$(awk -v t=$((ticks1 - ticks0)) -v hz="$clk_tck" -v n="$done_" 'BEGIN { print t / hz * 1e6 / n }') "
  fixed_user[$name]+="$(awk -v t=$((user1 - user0)) -v hz="$clk_tck" -v n="$done_" 'BEGIN { print t / hz * 1e6 / n }') "
}
rounds_seen=()
for round in $(seq "$rounds"); do
  # Each round starts one target further along, so none is always first or always last.
  shift_by=$(((round - 1) % ${#targets[@]}))
  order=("${targets[@]:shift_by}" "${targets[@]:0:shift_by}")
  load_round=$(cut -d' ' -f1-3 /proc/loadavg)
  steal0=$(steal_ticks) started=$(date +%s.%N)
  for c in "${connections[@]}"; do
    for name in "${order[@]}"; do
      echo "round $round/$rounds: $name, $c connections" >&2
      measure "$name" "$c"
    done
  done
  if [ "$rate" -gt 0 ]; then
    for name in "${order[@]}"; do
      [ "$name" = direct ] && continue
      echo "round $round/$rounds: $name at a fixed $rate req/s" >&2
      measure_fixed "$name"
    done
  fi
  steal1=$(steal_ticks) ended=$(date +%s.%N)
  rounds_seen+=("round $round: order ${order[*]}; load average $load_round before; steal $(awk -v t=$((steal1 - steal0)) -v hz="$clk_tck" -v s="$started" -v e="$ended" -v n="$(nproc)" 'BEGIN { printf "%.1f", 100 * t / hz / ((e - s) * n) }') % of the CPU during the round")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- instructions per request, under callgrind ----------------------------------------------

declare -A instr
# send_requests URL N: N GETs over 4 kept-alive HTTP/1.1 connections; fails on any non-200.
send_requests() {
  python3 - "$1" "$2" <<'PY'
import http.client, sys, threading, urllib.parse
url, n = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2])
failed = []
def client(count):
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    for _ in range(count):
        conn.request("GET", url.path or "/")
        r = conn.getresponse(); r.read()
        if r.status != 200: failed.append(r.status)
threads = [threading.Thread(target=client, args=(n // 4 + (i < n % 4),)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
sys.exit(f"{len(failed)} answers were not 200" if failed else 0)
PY
}
# count_instructions NAME URL COMMAND...: COMMAND (listening at URL) under callgrind; the Ir per request.
count_instructions() {
  local name=$1 target_url=$2 pid dump; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.$name.%p" "$@" >"$work/vg-$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do curl -sf -o /dev/null "$target_url" && break; sleep 0.2; done
  if ! send_requests "$target_url" 500; then
    warnings+=("$name under callgrind: the warm-up failed"); kill "$pid"; return
  fi
  callgrind_control -z "$pid" >/dev/null
  send_requests "$target_url" "$instructions" || warnings+=("$name under callgrind: some answers were not 200")
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  dump=$(ls -t "$work/callgrind.$name.$pid".* 2>/dev/null | head -n1)
  instr[$name]=$(awk -v n="$instructions" '/^(summary|totals):/ { print int($2 / n); exit }' "$dump" 2>/dev/null || true)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
if [ "$instructions" -gt 0 ]; then
  command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
  read -r vg_gateway vg_admin vg_nginx vg_haproxy vg_floor vg_nginx_same vg_haproxy_same <<<"$(free_ports 7)"
  echo "counting instructions per request under callgrind ($instructions requests each)" >&2
  count_instructions hyper-floor "http://127.0.0.1:$vg_floor/" \
    "$target/release/souk-bench-floor" --listen "127.0.0.1:$vg_floor" --upstream "127.0.0.1:$upstream_port"
  if [ "$gateway" = yes ]; then
    sed -e "s|127.0.0.1:$gateway_port|127.0.0.1:$vg_gateway|" -e "s|127.0.0.1:$admin_port|127.0.0.1:$vg_admin|" \
      "$work/gateway.toml" >"$work/gateway-vg.toml"
    count_instructions souk-gateway "http://127.0.0.1:$vg_gateway/" \
      "$target/release/souk-gateway" --config "$work/gateway-vg.toml"
  fi
  # One process each: nginx without its master, HAProxy as it runs above.
  for variant in nginx nginx-same; do
    port=$vg_nginx; [ "$variant" = nginx-same ] && port=$vg_nginx_same
    sed -e "s|listen 127.0.0.1:[0-9]*;|listen 127.0.0.1:$port;|" -e "s|pid $work/[a-z-]*.pid;|pid $work/$variant-vg.pid;|" \
      -e "s|^worker_processes 1;|worker_processes 1;\nmaster_process off;|" "$work/$variant.conf" >"$work/$variant-vg.conf"
    count_instructions "$variant" "http://127.0.0.1:$port/" \
      nginx -c "$work/$variant-vg.conf" -p "$work" -e "$work/$variant-vg-error.log" -g 'daemon off;'
  done
  for variant in haproxy haproxy-same; do
    port=$vg_haproxy; [ "$variant" = haproxy-same ] && port=$vg_haproxy_same
    sed -e "s|bind 127.0.0.1:[0-9]*|bind 127.0.0.1:$port|" "$work/$variant.cfg" >"$work/$variant-vg.cfg"
    count_instructions "$variant" "http://127.0.0.1:$port/" haproxy -f "$work/$variant-vg.cfg"
  done
fi

# --- report -------------------------------------------------------------------------------

table() {
  echo "| target | conns | req/s | p50 ms | p99 ms | CPU µs/req | of which user | new upstream conns/s | user instructions/req |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  local c name key
  for c in "${connections[@]}"; do
    for name in "${targets[@]}"; do
      key="$name $c"
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$c" \
        "$(median <<<"${rps[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.0f\n", $1 }')" \
        "$(median <<<"${p50[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.2f\n", $1 }')" \
        "$(median <<<"${p99[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.2f\n", $1 }')" \
        "$(median <<<"${cpu[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.1f\n", $1 }')" \
        "$(median <<<"${user[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.1f\n", $1 }')" \
        "$(median <<<"${fresh[$key]:-}" | awk '$1 == "-" { print; next } { printf "%.1f\n", $1 }')" \
        "${instr[$name]:--}"
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
  [ "$rate" -gt 0 ] || return 0
  echo
  echo "At a fixed rate: $rate req/s offered (h2load --h1 -t1, $rate_clients connections, $per_client req/s each), medians over rounds:"
  echo
  echo "| target | achieved req/s | mean ms | max ms | CPU µs/req | of which user |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  for name in "${targets[@]}"; do
    [ "$name" = direct ] && continue
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" \
      "$(median <<<"${fixed_rps[$name]:-}" | awk '$1 == "-" { print; next } { printf "%.0f\n", $1 }')" \
      "$(median <<<"${fixed_mean[$name]:-}" | awk '$1 == "-" { print; next } { printf "%.2f\n", $1 }')" \
      "$(median <<<"${fixed_max[$name]:-}" | awk '$1 == "-" { print; next } { printf "%.2f\n", $1 }')" \
      "$(median <<<"${fixed_cpu[$name]:-}" | awk '$1 == "-" { print; next } { printf "%.1f\n", $1 }')" \
      "$(median <<<"${fixed_user[$name]:-}" | awk '$1 == "-" { print; next } { printf "%.1f\n", $1 }')"
  done
}

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain 2>/dev/null)" ] || commit+=" (uncommitted changes)"
{
  echo "# souk-gateway benchmark, $(date '+%Y-%m-%d %H:%M')"
  echo
  echo "- machine: $(nproc) cores; load average $load_before before, $load_after after"
  echo "- commit $commit; $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), $(haproxy -v | head -n1 | cut -d' ' -f1,3)"
  echo "- wrk -t1 -d$duration --latency, $rounds round(s) interleaved (${targets[*]}), each round starting one target further along; medians over rounds"
  for line in "${rounds_seen[@]}"; do echo "  - $line"; done
  echo "- nginx-same and haproxy-same: the same work as souk-gateway's per request (access log to a file, X-Forwarded-For, a request id)"
  [ "$instructions" -eq 0 ] ||
    echo "- user instructions/req: callgrind's Ir over $instructions requests on 4 kept-alive connections after a warm-up, per request (the same for either connection count; the proxy's user-space instructions only)"
  echo "- upstream: souk-bench-upstream, 1 thread, 100-byte JSON body; CPU µs/req is the proxy's own (utime+stime of all its processes)"
  echo "- proxies: souk-gateway threads = $gateway_threads (0 = one per core), nginx worker_processes 1, haproxy nbthread 1; souk-gateway with routing, metrics, access log to a file and health checks on; hyper-floor = souk-bench-floor, the least a hyper proxy does (no features: its stack's cost)"
  [ -z "$gateway_note" ] || echo "- $gateway_note"
  for warning in "${warnings[@]}"; do echo "- warning: $warning"; done
  echo
  table
  echo
  echo "req/s in each round (round 1 first):"
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
