"""A short real run of the benchmark: every process, real sockets, figures in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.bench import BenchOptions, run_bench


@pytest.mark.timeout(120)
def test_short_benchmark_run_reports_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "bench.json"
    assert (
        run_bench(BenchOptions(duration=1.0, output=output, only=("throughput", "latency-20k")))
        == 0
    )
    printed = capsys.readouterr().out
    assert "throughput" in printed and "latency-20k" in printed
    results = {r["scenario"]["name"]: r for r in json.loads(output.read_text())["results"]}
    for name in ("throughput", "latency-20k"):
        result = results[name]
        assert result["received"] > 0
        assert result["lost"] == 0
        assert result["quotes_per_s"] > 0
        assert result["cpu_us_per_quote"] > 0
        assert result["p50_ms"] is not None and result["p99_ms"] >= result["p50_ms"]
