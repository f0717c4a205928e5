"""The benchmark's report: the results table with its comparisons, and the JSON document."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict
from typing import Any

from apps.bench.cluster import cluster_lines
from apps.bench.scenarios import Result

__all__ = ["results_document", "results_table"]


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def results_table(results: list[Result]) -> str:
    """One row per scenario, where the CPU goes, then pipelined vs naive and the cluster."""
    header = (
        f"{'scenario':<21}{'mode':<10}{'batch':>6}{'offered/s':>11}{'quotes/s':>11}"
        f"{'CPU µs/q':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'lost':>7}"
        f"{'RSS MB start/max/end':>22}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        s = r.scenario
        rss = "/".join(_num(v, ".0f") for v in (r.rss_start_mb, r.rss_max_mb, r.rss_end_mb))
        lines.append(
            f"{s.name:<21}{s.mode:<10}{s.batch:>6}{s.rate:>11,.0f}{r.quotes_per_s:>11,.0f}"
            f"{_num(r.cpu_us_per_quote, '.2f'):>10}{_num(r.p50_ms, '.2f'):>9}"
            f"{_num(r.p99_ms, '.2f'):>9}{_num(r.max_ms, '.1f'):>9}"
            f"{'-' if r.lost is None else str(r.lost):>7}{rss:>22}"
        )
    lines.append("")
    lines.extend(_cores_table(results))
    by_name = {r.scenario.name: r for r in results}
    fast, naive = by_name.get("throughput"), by_name.get("throughput-naive")
    if fast and naive and naive.quotes_per_s:
        lines.append("")
        lines.append(
            f"pipelined vs naive (spec design) throughput: "
            f"{fast.quotes_per_s / naive.quotes_per_s:.0f}x "
            f"({fast.quotes_per_s:,.0f} vs {naive.quotes_per_s:,.0f} quotes/s)"
        )
        if fast.cpu_us_per_quote and naive.cpu_us_per_quote:
            lines.append(
                f"CPU per quote: {naive.cpu_us_per_quote / fast.cpu_us_per_quote:.0f}x less "
                f"({fast.cpu_us_per_quote:.2f} vs {naive.cpu_us_per_quote:.2f} µs)"
            )
    lines.extend(cluster_lines(by_name))
    return "\n".join(lines)


def _cores_table(results: list[Result]) -> list[str]:
    """CPU µs per delivered quote of each process, the cores they add up to, /health."""
    header = (
        f"{'µs CPU per quote':<21}{'service':>9}{'simulator':>10}{'redis':>8}{'subscriber':>11}"
        f"{'all':>8}{'cores':>7}{'/health p50 ms':>16}{'max ms':>8}{'max KB':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        parts = (r.cpu_us_per_quote, r.sim_cpu_us_per_quote, r.redis_cpu_us_per_quote,
                 r.subscriber_cpu_us_per_quote)  # fmt: skip
        known = [p for p in parts if p is not None]
        total = sum(known) if known else None
        cores = total * r.quotes_per_s / 1e6 if total is not None else None
        size = r.extra.get("health_max_bytes")
        lines.append(
            f"{r.scenario.name:<21}{_num(parts[0], '.2f'):>9}{_num(parts[1], '.2f'):>10}"
            f"{_num(parts[2], '.2f'):>8}{_num(parts[3], '.2f'):>11}{_num(total, '.2f'):>8}"
            f"{_num(cores, '.2f'):>7}{_num(r.extra.get('health_p50_ms'), '.1f'):>16}"
            f"{_num(r.extra.get('health_max_ms'), '.1f'):>8}"
            f"{_num(size / 1024 if size is not None else None, '.1f'):>8}"
        )
    return lines


def results_document(results: list[Result]) -> dict[str, Any]:
    """The figures with the machine they were measured on (``bench-results.json``)."""
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "results": [{**asdict(r), "scenario": asdict(r.scenario)} for r in results],
    }
