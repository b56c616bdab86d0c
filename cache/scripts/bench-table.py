#!/usr/bin/env python3
"""Summarise the last `cargo bench -p leaklab-cache` run as Markdown tables.

Reads criterion's estimates under target/criterion (mean of the last run) and prints ops/s per
benchmark plus the ratios the README quotes. Usage: python3 cache/scripts/bench-table.py [target]
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target") / "criterion"


def mean_ns(group, variant, param):
    path = root / group / variant / param / "new" / "estimates.json"
    return json.loads(path.read_text())["mean"]["point_estimate"]


def elements(group, variant, param):
    path = root / group / variant / param / "new" / "benchmark.json"
    tp = json.loads(path.read_text()).get("throughput") or {}
    return tp.get("Elements", 1)


variants = ["fixed", "leaky_fresh", "leaky_aged", "moka"]
groups = ["get_hit", "miss_then_set_evict", "zipf_mix"]
ops = {}
print("| benchmark | threads | " + " | ".join(variants) + " |")
print("|---|---|" + "---|" * len(variants))
for g in groups:
    for t in ["1t", "2t"]:
        row = []
        for v in variants:
            try:
                rate = elements(g, v, t) / mean_ns(g, v, t) * 1e9
            except FileNotFoundError:
                row.append("–")
                continue
            ops[(g, v, t)] = rate
            row.append(f"{rate / 1e6:.2f} M/s")
        print(f"| {g} | {t[0]} | " + " | ".join(row) + " |")

print()
print("| benchmark | threads | fixed / moka | leaky_aged / fixed |")
print("|---|---|---|---|")
for g in groups:
    for t in ["1t", "2t"]:
        try:
            fm = ops[(g, "fixed", t)] / ops[(g, "moka", t)]
            lf = ops[(g, "leaky_aged", t)] / ops[(g, "fixed", t)]
        except KeyError:
            continue
        print(f"| {g} | {t[0]} | {fm:.2f}x | {lf:.2f}x |")

print()
print("| sweep | nodes walked | time per sweep | ns per node |")
print("|---|---|---|---|")
for v, hits in [("leaky", "10000hits"), ("leaky", "100000hits"), ("leaky", "1000000hits"),
                ("fixed", "1000000hits")]:
    try:
        ns = mean_ns("sweep", v, hits)
        nodes = elements("sweep", v, hits)
    except FileNotFoundError:
        continue
    # A fixed-mode walk is dominated by its 10,000 items, not its 2 nodes: no per-node figure.
    per_node = f"{ns / nodes:.1f}" if v == "leaky" else "n/a"
    print(f"| {v}, key 0 hit {int(hits[:-4]):,} times | {nodes:,} | {ns / 1e3:.1f} µs | {per_node} |")
