#!/usr/bin/env python3
"""Writes RESULTS.md (to stdout) from the reports bench/results.sh left in OUT: the targets of
issue 9 held against the measured figures, then the comparison and the blast radii as measured.

usage: results.py OUT STARTED COMMIT
"""
import json, pathlib, platform, sys

out, started, commit = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
rel = "bench/results/latest"
cmp = json.loads((out / "compare/compare.json").read_text())
kill = json.loads((out / "chaos-kill-payments/chaos.json").read_text())
delay = json.loads((out / "chaos-delay-inventory/chaos.json").read_text())
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")


def verdict(ok):
    return "**met**" if ok else "**not met**"


def errors(blast, endpoints, windows=("during", "after")):
    return sum(sum(blast["endpoints"].get(e, {}).get(w, {}).get("errors", {}).values())
               for e in endpoints for w in windows)


mono, micro = cmp["at_target"].get("monolith"), cmp["at_target"].get("microservices")
ratio = cmp.get("ratio")
shop_endpoints = ["browse", "search", "product", "add_to_cart", "view_cart"]
kill_errors = errors(kill, shop_endpoints)
ended = kill["ended"]
all_confirmed = kill["accepted_during"] > 0 and ended.get("confirmed", 0) == kill["accepted_during"]
product = delay["endpoints"].get("product", {}).get("during", {})
invariants_ok = all(
    isinstance(b["invariants"], dict) and all(not c["violations"] for c in b["invariants"].get("Ok", [{"violations": ["?"]}]))
    for b in (kill, delay))
fmt = lambda r: f"{r:g}/s" if r else "none of the rates tried"
tried = lambda topology: ", ".join(f'{p["rate"]:g}' for p in cmp["points"] if p["topology"] == topology)
idle = json.loads((out / "idle-memory.json").read_text())


def anon_split(idle):
    """The RSS sum taken apart: the processes' own memory, and the binary's pages each maps."""
    if "anon_mib" not in idle:
        return ""
    return (f"; of the RSS, {idle['anon_mib']:.0f} MiB is the processes' own (anonymous) memory and "
            f"{idle['file_mib']:.0f} MiB the shared binary's pages mapped by each "
            f"(bench/results/cost.md, \"Memory, third pass\")")


def point(topology, rate):
    return next((p for p in cmp["points"] if p["topology"] == topology and p["rate"] == rate), None)


def cpu_per_request(topology, rate):
    p = point(topology, rate)
    if not p:
        return "no rate met"
    shop = p["usage"]["total"]["cpu_percent"]
    generator = p["usage"].get("load generator", {}).get("cpu_percent", 0.0)
    return (f"shop {shop:.0f} % of a core, {shop / 100 * 1e6 / p['achieved_rate']:.0f} µs of CPU per request; "
            f"load generator {generator:.0f} %")


def largest_mib(topology, rate):
    p = point(topology, rate)
    sizes = [u["rss_mib"] for label, u in (p["usage"].items() if p else []) if label not in ("total", "load generator")]
    return max(sizes, default=float("inf"))


def largest(topology, rate):
    p = point(topology, rate)
    if not p:
        return f"{topology}: no rate met"
    label, usage = max(((l, u) for l, u in p["usage"].items() if l not in ("total", "load generator")),
                       key=lambda lu: lu[1]["rss_mib"])
    return f"{topology} at {rate:g}/s: largest {label} {usage['rss_mib']:.0f} MiB RSS ({usage.get('pss_mib', 0):.0f} MiB PSS)"

print(f"""# Results: what the architecture costs and buys, measured

Measured by `bench/results.sh` (one command: it builds `souk` in release mode, runs
`souk bench --compare` and two `souk chaos` runs, and writes this file from their reports in
[`{rel}/`]({rel}/)). Run started {started}, commit `{commit}`.

**Machine:** {cmp['machine']['cores']} cores ({model}), {platform.system()} {platform.release()}.
It is shared: other builds ran while this was measured, so absolute figures are pessimistic and
noisy; the interleaved rounds put that noise on both topologies alike.
- before: {(out / 'busy-before.txt').read_text().strip()}
- after the comparison: {(out / 'busy-after-compare.txt').read_text().strip()}
- at the end: {(out / 'busy-after.txt').read_text().strip()}

The load generator runs on the same two cores as the shop (its CPU share is in the tables).

## The targets

| target | measured | |
|---|---|---|
| mixed scenario at the highest rate with p99 < 50 ms (reads, cart) and < 250 ms (checkout acceptance), both topologies | monolith {fmt(mono)}, microservices {fmt(micro)} (rates tried: monolith {tried('monolith')}; microservices {tried('microservices')}; medians of {cmp['rounds']} rounds of {cmp['duration_s']:g} s) | {verdict(bool(mono) and bool(micro))} |
| the monolith sustains ≥ 4,000 mixed requests/s within those targets (issue 19) | {fmt(mono)}, {cpu_per_request('monolith', mono)} | {verdict(bool(mono) and mono >= 4000)} |
| microservices' throughput at that p99 ≥ 60 % of the monolith's | {f"{ratio * 100:.0f} %" if ratio else "no ratio (a topology met the targets at none of the rates)"} ({cpu_per_request('microservices', micro)}) | {verdict(bool(ratio) and ratio >= 0.6)} |
| the whole shop idle under `souk up` < 100 MiB summed over its processes | {idle['rss_mib']:.0f} MiB RSS, {idle['pss_mib']:.0f} MiB PSS over {len(idle['processes'])} processes (RSS counts the shared `souk` binary in every process; PSS counts each page once){anon_split(idle)} | {verdict(idle['rss_mib'] < 100)} |
| no process above 64 MiB at the highest sustained rate | {largest('monolith', mono)}; {largest('microservices', micro)} | {verdict(largest_mib('monolith', mono) <= 64 and largest_mib('microservices', micro) <= 64)} |
| payments killed for 10 s: 0 errors on browse, search and cart | {kill_errors} errors on {', '.join(shop_endpoints)} during and after the fault | {verdict(kill_errors == 0)} |
| … and every order accepted meanwhile confirmed after recovery | {kill['accepted_during']} orders accepted during the fault; ended: {json.dumps(ended)}; checkout errors during it: {json.dumps(kill['endpoints'].get('checkout', {}).get('during', {}).get('errors', {}))} | {verdict(all_confirmed)} |
| inventory slowed by 2 s: product pages p99 < 300 ms | p99 {product.get('p99_ms', 0):.1f} ms during the delay ({product.get('requests', 0)} pages, errors {json.dumps(product.get('errors', {}))}) | {verdict(product.get('p99_ms', 1e9) < 300 and not product.get('errors'))} |
| the saga's invariants after both chaos runs | every accepted order ended, one capture per confirmed order, stock conserved | {verdict(invariants_ok)} |
""")
checkout = kill["endpoints"].get("checkout", {})
refused = sum(checkout.get("during", {}).get("errors", {}).values())
refused_after = sum(checkout.get("after", {}).get("errors", {}).values())
print(f"""What the table does not say by itself:
- The throughput at target is the highest rate *tried* that met the targets: after the listed
  rates each topology climbs 10 % a step (`--climb`) until a step misses, so it is known to
  within a step.
- While payments was down, {refused} of {checkout.get('during', {}).get('requests', 0)} checkouts were
  refused (5xx) rather than accepted, and {refused_after} more in the {kill['recovered_after_s']:.1f} s after it
  came back: orders asks payments whether the payment method is the caller's before it accepts an
  order, so a checkout needs payments up at the moment it is placed. Of the orders accepted
  while it was down, {ended.get('confirmed', 0)} of {kill['accepted_during']} ended confirmed; the rest of the shop saw
  {kill_errors} errors.
""")
print((out / "compare/compare.md").read_text())
print(f"![worst p99 of reads by rate]({rel}/compare/p99-by-rate.svg)\n")
for name, title in (("chaos-kill-payments", "Payments killed for 10 s (mixed, 100/s)"),
                    ("chaos-delay-inventory", "Inventory slowed by 2 s (browse, 50/s)")):
    print(f"# {title}\n")
    print((out / name / "blast-radius.md").read_text().replace("## Blast radius", "## Blast radius", 1))
    print(f"Plots: [latency over time]({rel}/{name}/latency-over-time.svg), "
          f"[latency distribution]({rel}/{name}/latency-distribution.svg), "
          f"[throughput]({rel}/{name}/throughput.svg).\n")
