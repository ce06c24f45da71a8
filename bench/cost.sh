#!/usr/bin/env bash
# CPU per request of each hot endpoint, in both topologies: for each scenario (one endpoint
# each, then the mixed day), `souk bench --compare` at one rate, interleaved rounds, and the
# shop's CPU (summed over its processes) over the rate it answered. bench/cost.py makes the table.
#
#   bench/cost.sh [--rate 300] [--checkout-rate 100] [--rounds 3] [--duration 8s] [--souk PATH]
#                 [--scenarios list,search,product,view-cart,add-to-cart,checkout,mixed]
#
# Checkouts run at their own rate: each is a cart write, an order and a saga, several requests'
# worth of work. --souk measures another build (e.g. one of an earlier commit) instead of building this tree.
set -euo pipefail
rate=300 checkout_rate=100 rounds=3 duration=8s souk= scenarios=list,search,product,view-cart,add-to-cart,checkout,mixed
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --checkout-rate) checkout_rate=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --souk) souk=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
# The gateway lets each user write to the cart 1,200 times a minute (burst 100): above 20 writes/s
# per user (of the 20), a cart scenario measures 429s as much as writes.
if [ "$rate" -gt 400 ] && [[ ",$scenarios," == *,add-to-cart,* ]]; then
  echo "warning: add-to-cart at $rate/s is over the 20 users' cart-write limit (400/s): many answers will be 429" >&2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$souk" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  cargo build --release -q -p souk --manifest-path "$root/Cargo.toml"
  souk="$target/release/souk"
fi
# A copy: a rebuild while this runs must not pull the binary from under the shops.
cp "$souk" "$work/souk"
export SOUK_LOG=warn
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for scenario in ${scenarios//,/ }; do
  at=$rate
  [ "$scenario" = checkout ] && at=$checkout_rate
  echo "== $scenario at $at/s"
  "$work/souk" bench --compare --scenario "$scenario" --rates "$at" --rounds "$rounds" \
    --duration "$duration" --catalog-instances 0 --users 20 --report "$work/$scenario" \
    > "$work/$scenario.log" 2>&1 || { cat "$work/$scenario.log" >&2; exit 1; }
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$root/bench/cost.py" "$work" ${scenarios//,/ }
