#!/usr/bin/env python3
"""Splits a `perf script -F comm,ip,sym,dso` dump into where the CPU went, by component.

Attribution is by the sampled (leaf) frame: release builds have no frame pointers, so call
chains stop at the first Rust frame, and a component's share is the time spent in its own code,
not in what it calls. Usage: perf script -i perf.data -F comm,ip,sym,dso | bench/profile.py
"""
import collections
import sys

# (component, test on the leaf frames) in order: the first that matches takes the sample.
RULES = [
    ("scheduling: futex waits, task switches, wake-ups",
     lambda syms, kernel: any(k in syms[0] for k in (
         "finish_task_switch", "_raw_spin_unlock_irq", "futex", "schedule",
         "irqentry_exit", "exit_to_user_mode"))),
    ("signature checks (Ed25519)",
     lambda syms, kernel: any("edwards25519" in f.lower() or "ed25519" in f.lower() for f in syms)),
    ("SQLite engine (parse, VDBE, b-tree, page cache, WAL)",
     lambda syms, kernel: any("sqlite3" in f or f.startswith(("pcache", "btree", "wal", "vdbe"))
                              for f in syms[:3])),
    ("malloc/free (glibc or mimalloc)",
     lambda syms, kernel: syms[0].startswith(("mi_", "_mi_")) or any(k in syms[0] for k in (
         "malloc", "_int_free", "cfree", "free", "unlink_chunk", "realloc", "calloc"))),
    ("tracing / OpenTelemetry",
     lambda syms, kernel: any("tracing" in f or "opentelemetry" in f for f in syms[:4])),
    ("JSON (serde_json)", lambda syms, kernel: any("serde_json" in f or "serde::" in f for f in syms[:4])),
    ("sqlx plumbing (statement cache, channels)",
     lambda syms, kernel: any("sqlx" in f or "flume" in f for f in syms[:4])),
    ("HTTP (hyper, axum, tower)",
     lambda syms, kernel: any(k in f for f in syms[:4] for k in ("hyper", "axum", "tower", "http::"))),
    ("kernel I/O (read/write/pread, epoll, copies)", lambda syms, kernel: kernel),
    ("other user code", lambda syms, kernel: True),
]


def samples(lines):
    current = None
    for line in lines:
        if line.strip() and not line[0].isspace():
            if current:
                yield current
            current = (line.split()[0], [])
        elif line.strip() and current:
            parts = line.strip().split(None, 1)
            if len(parts) > 1:
                sym, _, dso = parts[1].rpartition(" (")
                current[1].append((sym, dso))
    if current:
        yield current


def main():
    by_component = collections.Counter()
    by_thread = collections.Counter()
    by_thread_component = collections.Counter()
    by_leaf = collections.Counter()
    total = 0
    for comm, frames in samples(sys.stdin):
        syms = [f[0] for f in frames] or ["?"]
        kernel = bool(frames) and "kernel" in frames[0][1]
        name = next(name for name, test in RULES if test(syms, kernel))
        by_component[name] += 1
        by_thread[comm] += 1
        by_thread_component[(comm, name)] += 1
        by_leaf[syms[0]] += 1
        total += 1
    if not total:
        sys.exit("no samples")
    print(f"{total} samples\n")
    print("| component | share of CPU samples |\n|---|---:|")
    for name, _ in RULES:
        print(f"| {name} | {100 * by_component[name] / total:.1f} % |")
    print("\n| thread | samples | of which scheduling | of which SQLite |\n|---|---:|---:|---:|")
    for comm, n in by_thread.most_common():
        sched = by_thread_component[(comm, RULES[0][0])]
        sql = by_thread_component[(comm, RULES[2][0])]
        print(f"| {comm} | {100 * n / total:.1f} % | {100 * sched / total:.1f} % | {100 * sql / total:.1f} % |")
    print("\nThe leaf functions with the most samples:\n")
    for sym, n in by_leaf.most_common(25):
        print(f"- {100 * n / total:.1f} % {sym[:110]}")


if __name__ == "__main__":
    main()
