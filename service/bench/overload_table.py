"""The table of a service/bench/overload.sh run: python3 overload_table.py OUT CONFIG..."""

import csv
import json
import pathlib
import statistics
import sys

KNEE = 3500  # offered page views/s past which the ramp's goodput is summarised


def windows(d):
    with open(d / "windows.csv") as f:
        return [r for r in csv.DictReader(f) if r["width_s"] == "1"]


def totals(d):
    with open(d / "summary.json") as f:
        return json.load(f)["totals"]


def rss_mib(d):
    p = d / "rss_kib.txt"
    vals = [int(x) for x in p.read_text().split()] if p.exists() else []
    return f"{max(vals) / 1024:.0f}" if vals else "?"


def main(out, configs):
    print(
        "| configuration | round | ramp: offered/s at the first 503 | ramp: good/s once offered "
        f"≥ {KNEE:,}/s (min / median / max) | ramp: good | ramp: no answer within 250 ms "
        "| 3x: good | 3x: 503 | 3x: admitted that missed the quota | … of them in windows starting before 2 s "
        "| 3x: max RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for config in configs:
        for rd in sorted((out / config).iterdir(), key=lambda p: int(p.name)):
            ramp, burst = rd / "ramp", rd / "burst"
            w = windows(ramp)
            first = next((int(r["sent"]) for r in w if int(r["status_503"]) > 0), None)
            high = [int(r["good"]) for r in w if int(r["sent"]) >= KNEE]
            hs = f"{min(high):,} / {statistics.median(high):,.0f} / {max(high):,}" if high else "—"
            t, b = totals(ramp), totals(burst)
            shed = b.get("status_503", 0)
            admitted = b["sent"] - shed
            missed = admitted - b["good"]
            bw = windows(burst)
            early = sum(
                int(r["sent"]) - int(r["status_503"]) - int(r["good"])
                for r in bw
                if float(r["offset_s"]) < 2.0
            )
            print(
                f"| {config} | {rd.name} | {f'{first:,}' if first else 'none'} | {hs} "
                f"| {t['good']:,} | {t['timeout']:,} | {b['good']:,} | {shed:,} "
                f"| {missed:,} of {admitted:,} ({100 * missed / max(admitted, 1):.1f} %) "
                f"| {early:,} | {rss_mib(burst)} |"
            )


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), sys.argv[2:])
