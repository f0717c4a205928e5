"""``market-data bench``: throughput, CPU and latency of the real pipeline, with figures."""

from apps.bench.runner import BenchOptions, run_bench

__all__ = ["BenchOptions", "run_bench"]
