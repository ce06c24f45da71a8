"""The table of bench/cost.sh: CPU per request per scenario and topology, from each compare.json.

    python3 bench/cost.py WORK scenario...
"""
import json
import sys
from pathlib import Path

work = Path(sys.argv[1])
print("| scenario | topology | answered/s | shop CPU % of a core | CPU µs/request | load generator CPU % | p50 / p99 ms | errors |")
print("|---|---|---:|---:|---:|---:|---|---:|")
processes = {}
for scenario in sys.argv[2:]:
    compare = json.loads((work / scenario / "compare.json").read_text())
    for point in compare["points"]:
        usage = point["usage"]
        shop = usage["total"]["cpu_percent"]
        generator = usage.get("load generator", {}).get("cpu_percent", 0.0)
        rate = point["achieved_rate"]
        per_request = shop / 100 * 1e6 / rate if rate else float("nan")
        endpoints = [e for e in point["p99_ms"] if e != "reads (all)" and not e.startswith("order")]
        latency = ", ".join(f"{e} {point['p50_ms'][e]:.1f} / {point['p99_ms'][e]:.1f}" for e in endpoints)
        print(f"| {scenario} | {point['topology']} | {rate:.0f} | {shop:.0f} | {per_request:.0f} | "
              f"{generator:.0f} | {latency} | {point['error_share'] * 100:.2f} % |")
        processes[(scenario, point["topology"])] = {
            label: u["cpu_percent"] / 100 * 1e6 / rate if rate else 0.0
            for label, u in usage.items() if label not in ("total", "load generator")
        }
print()
print("CPU µs per request by process (microservices):")
print()
for (scenario, topology), by in processes.items():
    if topology != "monolith":
        parts = ", ".join(f"{label} {v:.0f}" for label, v in sorted(by.items(), key=lambda kv: -kv[1]) if v >= 1)
        print(f"- {scenario}: {parts}")
