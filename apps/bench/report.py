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


def results_table(results: list[Result]) -> str:
    """One row per scenario, then pipelined vs naive and one Redis vs the cluster."""
    header = (
        f"{'scenario':<17}{'mode':<10}{'batch':>6}{'offered/s':>11}{'quotes/s':>11}"
        f"{'CPU µs/q':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'lost':>7}{'RSS MB':>15}"
    )
    lines = [header, "-" * len(header)]

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for r in results:
        s = r.scenario
        lines.append(
            f"{s.name:<17}{s.mode:<10}{s.batch:>6}{s.rate:>11,.0f}{r.quotes_per_s:>11,.0f}"
            f"{num(r.cpu_us_per_quote, '.2f'):>10}{num(r.p50_ms, '.2f'):>9}"
            f"{num(r.p99_ms, '.2f'):>9}{num(r.max_ms, '.1f'):>9}"
            f"{'-' if r.lost is None else str(r.lost):>7}"
            f"{f'{r.rss_start_mb:.0f} -> {r.rss_end_mb:.0f}':>15}"
        )
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
