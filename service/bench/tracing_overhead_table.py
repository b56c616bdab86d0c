#!/usr/bin/env python3
"""The summary table of tracing_overhead.sh, from the "round N: ..." lines it prints.

Given one run's output it gives that run's table (the script calls it so). Given several saved
outputs it pools their rounds, which is how the README's pooled figures were computed:

    bash service/bench/tracing_overhead.sh | tee run1.log
    python3 service/bench/tracing_overhead_table.py run1.log run2.log run3.log

Per configuration: the median over rounds of the per-round ratio to that round's "off" side, a
95 % bootstrap interval of that median, and the range, for requests/s and for service CPU per
request ("CPU ratio" is off's CPU per request over this one's, so below 1 means more CPU). The
default and "1%" are the same configuration; when both are present a pooled row is added.
"""
import random
import re
import statistics
import sys

# round 3: off 16827.16 41.2 default 16090.58 42.8, 694 spans/s received, load 2.57
ROUND = re.compile(
    r"round \d+: (\S+) ([\d.]+) ([\d.]+) (\S+) ([\d.]+) ([\d.]+), (\d+) spans/s received"
)


def rounds(lines):
    """(configuration, (off req/s, off µs), (req/s, µs), spans/s) per round."""
    for line in lines:
        m = ROUND.match(line)
        if not m:
            continue
        a, ra, ua, b, rb, ub, spans = m.groups()
        sides = {a: (float(ra), float(ua)), b: (float(rb), float(ub))}
        config = b if a == "off" else a
        yield config, sides["off"], sides[config], int(spans)


def interval(xs, n=10_000):
    """95 % bootstrap interval of the median: how far the median itself could be off."""
    rng = random.Random(1)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def row(name, rows):
    ratios = [x[0] / off[0] for off, x, _ in rows]
    cpu = [off[1] / x[1] for off, x, _ in rows]
    (rlo, rhi), (clo, chi) = interval(ratios), interval(cpu)
    return (
        f"| {name} | {len(rows)} | {statistics.median(x[0] for _, x, _ in rows):,.0f} | "
        f"{statistics.median(ratios):.3f} | {rlo:.3f}–{rhi:.3f} | "
        f"{min(ratios):.3f}–{max(ratios):.3f} | "
        f"{statistics.median(x[1] for _, x, _ in rows):.1f} | {statistics.median(cpu):.3f} | "
        f"{clo:.3f}–{chi:.3f} | {min(cpu):.3f}–{max(cpu):.3f} | "
        f"{statistics.median(s for _, _, s in rows):,.0f} |"
    )


def main(paths):
    by = {}
    for path in paths or ["-"]:
        with sys.stdin if path == "-" else open(path, encoding="utf-8") as f:
            for config, off, x, spans in rounds(f):
                by.setdefault(config, []).append((off, x, spans))
    if not by:
        sys.exit("no 'round N: ...' lines found")
    print(
        "| tracing (against off, side by side) | rounds | req/s, median | "
        "ratio to off (median of per-round ratios) | 95 % interval | min–max | "
        "service CPU µs/request, median | CPU ratio to off (median) | 95 % interval | "
        "min–max | spans/s received |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for config, rows in by.items():
        print(row(config, rows))
    if "default" in by and "1%" in by:
        print(row("1% and default, pooled", by["1%"] + by["default"]))


if __name__ == "__main__":
    main(sys.argv[1:])
