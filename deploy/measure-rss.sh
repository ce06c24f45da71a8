#!/usr/bin/env bash
# Measures what the Kubernetes resource requests and limits are set from: each service's resident
# memory (VmRSS) idle, and its peak (VmHWM) after a short mixed load through the gateway — browsing
# with wrk while shoppers sign up, sign in, fill carts, add cards and check out with curl.
#
#   deploy/measure-rss.sh                  # SQLite (the default backend)
#   SOUK_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres deploy/measure-rss.sh
#                                          # PostgreSQL + Redis, as deployed (databases soukrss_*)
#
# Runs the release `souk up --quiet` in a temporary data dir on a free port; prints a report,
# asserts nothing. Needs curl and jq; wrk for the browsing load (apt-get install wrk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
LOAD_SECS=${LOAD_SECS:-30}
SHOPPERS=${SHOPPERS:-8}

cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"
souk="$target/release/souk"
data=$(mktemp -d)
pid=
cleanup() {
    if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$data"
    # This run's PostgreSQL databases and Redis keys (the shop keeps its data between runs).
    if [[ -n ${SOUK_POSTGRES_URL:-} ]]; then
        for db in $(psql "$SOUK_POSTGRES_URL" -Atc "select datname from pg_database where datname like '${SOUK_POSTGRES_DATABASE_PREFIX}%'"); do
            psql "$SOUK_POSTGRES_URL" -qc "drop database \"$db\" with (force)" || true
        done
        redis-cli -u "${SOUK_REDIS_URL:-redis://127.0.0.1:6379}" --scan --pattern "${SOUK_POSTGRES_DATABASE_PREFIX}*" |
            xargs -r redis-cli -u "${SOUK_REDIS_URL:-redis://127.0.0.1:6379}" del >/dev/null || true
    fi
}
trap cleanup EXIT

backend=(--backend embedded)
if [[ -n ${SOUK_POSTGRES_URL:-} ]]; then
    backend=(--backend postgres)
    # Databases of this run only (dropped at the end): soukrss_<pid>_<service>.
    export SOUK_POSTGRES_DATABASE_PREFIX="soukrss_$$_"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export SOUK_ADMIN_EMAIL=rss-measure@souk.invalid SOUK_ADMIN_PASSWORD="rss measuring admin password"
"$souk" up --quiet --data-dir "$data/shop" --port "$port" "${backend[@]}" >"$data/up.out" 2>&1 &
pid=$!
until curl -sf "$base/api/v1/categories" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$data/up.out"; exit 1; }
    sleep 0.2
done
# Inventory learns the products (and their demo stock) a few seconds after start.
product=$(curl -sf "$base/api/v1/products?limit=1" | jq -r '.items[0].id')
for _ in $(seq 120); do
    curl -sf "$base/api/v1/availability/$product" | jq -e '.quantity > 0' >/dev/null 2>&1 && break
    sleep 0.5
done

# Each process of the shop: "<name> <pid>", the gateway and `souk serve <service>` children.
processes() {
    for child in $(pgrep -P "$pid"); do
        local args
        args=$(tr '\0' ' ' <"/proc/$child/cmdline")
        case $args in
            *" serve gateway"*) echo "gateway $child" ;;
            *" serve "*) echo "$(awk '{for (i = 1; i < NF; i++) if ($i == "serve") print $(i + 1)}' <<<"$args") $child" ;;
        esac
    done
}
kib() { awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"; }
# CPU time used so far, in clock ticks (utime + stime; the fields after the command's parentheses).
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

sleep 10
declare -A idle cpu
while read -r name child; do idle[$name]=$(kib "$child" VmRSS); cpu[$name]=$(ticks "$child"); done < <(processes)

# --- load -------------------------------------------------------------------------------
shopper() {
    local n=$1 email token pm i
    email="rss-$n-$RANDOM@example.com"
    curl -sf -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
        -d "{\"email\": \"$email\", \"password\": \"measuring resident memory $n\", \"name\": \"Shopper $n\"}" >/dev/null || true
    token=$(curl -sf -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"email\": \"$email\", \"password\": \"measuring resident memory $n\"}" | jq -r .access_token)
    pm=$(curl -sf -X POST "$base/api/v1/payment-methods" -H "authorization: Bearer $token" -H 'content-type: application/json' \
        -d '{"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}' | jq -r .id)
    i=0
    local deadline=$((SECONDS + LOAD_SECS))
    while ((SECONDS < deadline)); do
        i=$((i + 1))
        curl -sf -X PUT "$base/api/v1/cart/items/$product" -H "authorization: Bearer $token" \
            -H 'content-type: application/json' -d '{"quantity": 1}' >/dev/null || true
        curl -sf "$base/api/v1/cart" -H "authorization: Bearer $token" >/dev/null || true
        curl -sf -X POST "$base/api/v1/orders" -H "authorization: Bearer $token" -H 'content-type: application/json' \
            -H "idempotency-key: rss-$n-$i" \
            -d "{\"payment_method_id\": \"$pm\", \"shipping_address\": {\"name\": \"S\", \"line1\": \"1 Main St\", \"city\": \"London\", \"postal_code\": \"N1\", \"country\": \"GB\"}}" >/dev/null || true
        curl -sf "$base/api/v1/orders" -H "authorization: Bearer $token" >/dev/null || true
        curl -sf "$base/api/v1/history" -H "authorization: Bearer $token" >/dev/null || true
        curl -sf "$base/api/v1/me" -H "authorization: Bearer $token" >/dev/null || true
    done
}
cat >"$data/browse.lua" <<LUA
local paths = {"/api/v1/products?limit=20", "/api/v1/products?q=waterproof%20jacket",
  "/api/v1/products/$product/details", "/api/v1/categories", "/api/v1/availability/$product", "/"}
local i = 0
request = function() i = i + 1; return wrk.format("GET", paths[(i % #paths) + 1]) end
LUA
started=$SECONDS
for n in $(seq "$SHOPPERS"); do shopper "$n" & done
if command -v wrk >/dev/null; then
    wrk -t1 -c32 -d"${LOAD_SECS}s" -s "$data/browse.lua" "$base" >"$data/wrk.out" 2>&1 || true
fi
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
took=$((SECONDS - started))

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); backend: ${backend[1]}"
echo "load: ${took}s, $SHOPPERS shoppers checking out in a loop + wrk -c32 browsing"
grep -E "Requests/sec|requests in" "$data/wrk.out" 2>/dev/null | sed 's/^/  wrk: /' || true
printf '%-10s %10s %14s %14s\n' service "idle MiB" "loaded MiB" "load CPU (m)"
hz=$(getconf CLK_TCK)
while read -r name child; do
    awk -v n="$name" -v i="${idle[$name]:-0}" -v h="$(kib "$child" VmHWM)" -v c="$(( $(ticks "$child") - ${cpu[$name]:-0} ))" \
        -v hz="$hz" -v s="$took" 'BEGIN { printf "%-10s %10.1f %14.1f %14.0f\n", n, i / 1024, h / 1024, c / hz / s * 1000 }'
done < <(processes | sort)
echo "loaded = peak RSS (VmHWM) after the load; load CPU = average millicores over the load"
