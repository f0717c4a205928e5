"""A short real run of the benchmark: every process, real sockets, figures in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.bench import BenchOptions, run_bench


@pytest.mark.timeout(240)
def test_short_benchmark_run_reports_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "bench.json"
    only = ("throughput", "whole-market", "latency-20k")
    # One run for the served scenarios and the two references beside them (a run's set-up
    # is most of its time).
    both = ("throughput-python", "throughput-naive")
    assert run_bench(BenchOptions(duration=1.0, output=output, only=only + both)) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in only)
    assert "/health p50 ms" in printed
    results = {r["scenario"]["name"]: r for r in json.loads(output.read_text())["results"]}
    for name in only:
        result = results[name]
        assert result["received"] > 0
        assert result["lost"] == 0
        assert result["quotes_per_s"] > 0
        # The service's own process, and the helpers beside it (apps/bench/served.py).
        for figure in ("cpu_us_per_quote", "sim_cpu_us_per_quote", "subscriber_cpu_us_per_quote"):
            assert result[figure] > 0
        assert result["redis_cpu_us_per_quote"] is not None
        assert result["p50_ms"] is not None and result["p99_ms"] >= result["p50_ms"]
        assert 0 < result["rss_start_mb"] <= result["rss_max_mb"]
        # /health probed while the feed ran: every probe answered, its size recorded.
        extra = result["extra"]
        assert extra["health_probes"] >= 1 and extra["health_errors"] == 0
        assert extra["health_max_bytes"] > 0 and extra["health_max_ms"] >= extra["health_p50_ms"]
        assert extra["quote_paths"] == ["native"]  # the service said which path it ran
    # The spec's per-quote design must see the frames the reader parsed natively too; the
    # -python twin must really run the Python path (the service says so in /health).
    for name in both:
        assert results[name]["received"] > 0 and results[name]["quotes_per_s"] > 0
    python = results["throughput-python"]
    assert python["lost"] == 0
    assert python["extra"]["quote_paths"] == ["python (MARKET_DATA_NATIVE=0)"]
