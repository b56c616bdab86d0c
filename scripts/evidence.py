#!/usr/bin/env python3
"""Turns one reproduce.sh run directory into figures: charts as PNG, and evidence.json with
the availability, the dips, the cache's growth, the sweep pauses, the heap profile's top
allocation site and the client-span vs server-side timings. `table` prints a Markdown table of
several runs.

    scripts/evidence.py run <dir> <name>
    scripts/evidence.py table <out dir> <name>...
"""

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path


def charts(dir: Path) -> list[str]:
    """The loadtest report's inline SVG charts, as PNG files next to it."""
    report = dir / "loadtest" / "report.html"
    made = []
    if not report.exists():
        return made
    text = report.read_text()
    for name in ("availability", "latency"):
        m = re.search(rf'<svg id="chart-{name}".*?</svg>', text, re.S)
        if not m:
            continue
        svg = dir / f"{name}.svg"
        # A standalone file needs a size: the report's charts scale to the page.
        svg.write_text(m.group(0).replace('width="100%"', 'width="960" height="280"', 1))
        if shutil.which("rsvg-convert"):
            png = dir / f"{name}.png"
            subprocess.run(
                ["rsvg-convert", "-b", "white", "-o", str(png), str(svg)], check=True
            )
            svg.unlink()
            made.append(png.name)
        else:
            made.append(svg.name)
    return made


def heap_top(dir: Path) -> dict | None:
    """The flame graph frame holding most sampled live bytes, and the cache's share."""
    svg = dir / "heap-flamegraph.svg"
    if not svg.exists():
        return None
    frames = []
    for title in re.findall(r"<title>(.*?)</title>", svg.read_text(), re.S):
        m = re.match(r"(.*) \(([\d,]+) (?:samples|bytes)?.*?([\d.]+)%\)$", html.unescape(title))
        if m:
            frames.append((float(m.group(3)), m.group(1)))
    leak = [f for f in frames if "new_node" in f[1]]
    return {
        "new_node_share_pct": max((p for p, _ in leak), default=0.0),
        "new_node_frame": max(leak)[1] if leak else None,
    }


def span_max(dir: Path) -> dict:
    path = dir / "traces" / "spans.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["by_name"]
    out = {}
    for row in rows:
        for db in ("redis", "mysql"):
            if f"[{db} " in row["span"]:
                key = f"{db}_client_span_max_ms"
                out[key] = max(out.get(key, 0.0), row["max_ms"])
                key = f"{db}_client_span_p99_ms"
                out[key] = max(out.get(key, 0.0), row["p99_ms"])
                key = f"{db}_client_spans"
                out[key] = out.get(key, 0) + row["count"]
                key = f"{db}_client_span_errors"
                out[key] = out.get(key, 0) + row.get("errors", 0)
    return out


def run(dir: Path, name: str) -> dict:
    summary = json.loads((dir / "loadtest" / "summary.json").read_text())
    totals, verdict = summary["totals"], summary["verdict"]
    samples = [
        json.loads(line)
        for line in (dir / "cache.jsonl").read_text().splitlines()
        if line.strip()
    ] if (dir / "cache.jsonl").exists() else []
    caches = [s["cache"] for s in samples if s.get("cache")]
    timings = {}
    if (dir / "server-timings.txt").exists():
        for line in (dir / "server-timings.txt").read_text().splitlines():
            key, value = line.split()
            timings[key] = int(value)
    dips = verdict["dips_1s"]
    evidence = {
        "run": name,
        "availability": totals["availability"],
        "bad": totals["bad"],
        "timeout": totals["timeout"],
        "server_error": totals["server_error"],
        "connection": totals["connection"],
        "sent": totals["sent"],
        "p99_ms": totals["latency"]["p99_ms"],
        "p999_ms": totals["latency"]["p999_ms"],
        "max_ms": totals["latency"]["max_ms"],
        "achieved_ratio": summary["generator"]["achieved_ratio"],
        "dips_1s": len(dips),
        "dips_10s": len(verdict["dips_10s"]),
        "windows_1s": len(summary["windows_1s"]),
        "first_dip_s": round(dips[0]["offset_s"], 1) if dips else None,
        "nodes_first": caches[0]["nodes"] if caches else None,
        "nodes_last": caches[-1]["nodes"] if caches else None,
        "items_last": caches[-1]["items"] if caches else None,
        "cache_bytes_first": caches[0]["heap_bytes"] if caches else None,
        "cache_bytes_last": caches[-1]["heap_bytes"] if caches else None,
        "rss_mib_max": round(max((s["rss_kib"] for s in samples), default=0) / 1024),
        "max_sweep_pause_ms": max((c["max_sweep_pause_us"] for c in caches), default=0) / 1000,
        "max_sweep_nodes": max((c["max_sweep_nodes"] for c in caches), default=0),
        "flip": summary.get("flip") and {
            "at_s": round(summary["flip"]["offset_s"], 1),
            "before": summary["flip"]["before"]["availability"],
            "after": summary["flip"]["after"]["availability"],
        },
        "heap": heap_top(dir),
        **timings,
        **span_max(dir),
        "charts": charts(dir),
    }
    (dir / "evidence.json").write_text(json.dumps(evidence, indent=2) + "\n")
    print(json.dumps(evidence, indent=2))
    return evidence


def table(out: Path, names: list[str]) -> None:
    print("| run | availability | 1-s windows below 0.999 | p99 | nodes (start → end) "
          "| cache bytes (end) | max RSS | longest sweep | Redis client span max "
          "| Redis SLOWLOG > 10 ms | MySQL statements > 10 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        e = json.loads((out / name / "evidence.json").read_text())
        flip = ""
        if e.get("flip"):
            f = e["flip"]
            flip = f" (before flip {f['before']:.4f}, after {f['after']:.4f})"
        print(
            f"| {name} | {e['availability']:.4f}{flip} | {e['dips_1s']} of {e['windows_1s']} "
            f"| {e['p99_ms']:.1f} ms | {e['nodes_first']:,} → {e['nodes_last']:,} "
            f"| {e['cache_bytes_last'] / 2**20:,.0f} MiB | {e['rss_mib_max']:,} MiB "
            f"| {e['max_sweep_pause_ms']:.1f} ms | {e.get('redis_client_span_max_ms', 0):.1f} ms "
            f"| {e.get('redis_slowlog_over_10ms', '?')} | {e.get('mysql_statements_over_10ms', '?')} |"
        )


def main() -> None:
    if len(sys.argv) >= 4 and sys.argv[1] == "run":
        run(Path(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "table":
        table(Path(sys.argv[2]), sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
