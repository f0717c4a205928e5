"""Runs the benchmark scenarios and reports them as tables and a JSON file.

The service is measured as users run it: each pipelined scenario (and the cluster one)
starts its own ``market-data serve`` process, subscribes through its HTTP API and reads
its CPU time and RSS from ``/proc`` (apps/bench/served.py). The naive scenario, a
comparison baseline, runs the spec's design inside this process (apps/bench/inprocess.py).
One simulator process serves them all; Redis is a private redis-server, or a private
3-primary cluster for ``cluster-3``. The scenarios are in ``scenarios.py``, the tables
and JSON document in ``report.py``.
"""

from __future__ import annotations

import json
import os
import platform

from apps.bench.ceiling import ceiling_figures, ceiling_lines, measure_ceiling
from apps.bench.inprocess import run_naive
from apps.bench.processes import Peer, bench_config, simulator_main
from apps.bench.report import results_document, results_table
from apps.bench.scenarios import BenchOptions, Result, Scenario, scenarios
from apps.bench.served import run_served
from libs.redis_embedded import EmbeddedRedis
from libs.redis_embedded.cluster import EmbeddedRedisCluster

# BenchOptions, Result and Scenario live in apps/bench/scenarios.py; named here too,
# where ``market-data bench`` and older imports look for them.
__all__ = ["BenchOptions", "Result", "Scenario", "run_bench"]


async def _bench(options: BenchOptions) -> list[Result]:
    import uvloop  # noqa: F401  (the service runs on uvloop under uvicorn; so does this)

    chosen = [s for s in scenarios(options) if not options.only or s.name in options.only]
    results: list[Result] = []
    async with EmbeddedRedis() as redis_server:
        # "*" streams the simulator's 10,000-symbol Zipf-skewed tape (bench_config).
        sim = Peer(simulator_main, bench_config())
        try:
            _, sim_port = await sim.reply()
            # One Redis's ceiling at SET + PUBLISH per quote, measured beside the scenarios.
            ceiling = await measure_ceiling(redis_server.params)
            for scenario in chosen:
                print(f"running {scenario.name} ({scenario.duration:g}s) ...", flush=True)
                if scenario.mode == "naive":
                    result = await run_naive(scenario, sim, sim_port, redis_server)
                elif scenario.mode == "cluster":
                    async with EmbeddedRedisCluster(primaries=3) as cluster:
                        result = await run_served(
                            scenario, sim, sim_port, redis_server, cluster=cluster
                        )
                else:
                    result = await run_served(scenario, sim, sim_port, redis_server)
                if ceiling is not None and scenario.mode == "pipelined":
                    result.extra.update(ceiling_figures(ceiling, result.quotes_per_s))
                results.append(result)
        finally:
            sim.close()
    return results


def run_bench(options: BenchOptions) -> int:
    import uvloop

    if options.only == ("fanout",):  # the live stream's fan-out alone (apps/bench/fanout.py)
        return _fanout(options)
    print(
        f"market-data bench on {os.cpu_count()} CPUs, Python {platform.python_version()}: "
        "market-data serve, simulator and subscriber each in its own process, "
        "private redis-server",
        flush=True,
    )
    results = uvloop.run(_bench(options))
    print()
    print(results_table(results))
    for line in ceiling_lines(results):
        print(line)
    options.output.write_text(json.dumps(results_document(results), indent=2))
    print(f"\nfigures written to {options.output}")
    if not options.only or "fanout" in options.only:
        return _fanout(options)
    return 0


def _fanout(options: BenchOptions) -> int:
    from apps.bench.fanout import FanoutOptions, run_fanout

    run_fanout(FanoutOptions(duration=options.duration))
    return 0
