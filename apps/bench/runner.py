"""Runs the benchmark scenarios and reports them as a table and a JSON file.

Topology, all on loopback: simulator process --WebSocket--> this process (the service's
own ``AlpacaMarketDataStream``: decode, Decimal validation, SET+PUBLISH) --> private
redis-server --> subscriber process (PSUBSCRIBE price.updated.*). CPU per quote is this
process's CPU time over the measuring window divided by the quotes that reached the
subscriber in it; latency is the subscriber's receipt time minus the quote's ``t``,
which the simulator stamps when it sends the frame. The scenarios are in
``scenarios.py``, the table and JSON document in ``report.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from typing import Any

from apps.bench.ceiling import ceiling_figures, ceiling_lines, measure_ceiling
from apps.bench.cluster import (
    cluster_client,
    cluster_subscriber_main,
    measure_redis,
    shard_channels,
)
from apps.bench.fencing import armed_guard
from apps.bench.naive import NaiveMarketDataStream
from apps.bench.processes import Peer, simulator_main, subscriber_main
from apps.bench.report import results_document, results_table
from apps.bench.scenarios import BenchOptions, Result, Scenario, scenarios
from apps.simulator import SimulatorConfig
from libs.market_data import AlpacaMarketDataStream
from libs.redis_client import EventPublisher, RedisClient, RedisConnectionParams
from libs.redis_embedded import EmbeddedRedis
from libs.redis_embedded.cluster import EmbeddedRedisCluster

# BenchOptions, Result and Scenario live in apps/bench/scenarios.py; named here too,
# where ``market-data bench`` and older imports look for them.
__all__ = ["BenchOptions", "Result", "Scenario", "run_bench"]


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentile(sorted_values: list[int], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index] / 1e6


async def _run_scenario(
    scenario: Scenario,
    sim: Peer,
    sim_url: str,
    params: RedisConnectionParams,
    *,
    cluster: EmbeddedRedisCluster | None = None,
    redis_pids: tuple[int, ...] = (),
) -> Result:
    client = RedisClient(params=params) if cluster is None else cluster_client(cluster)
    stream_class = NaiveMarketDataStream if scenario.mode == "naive" else AlpacaMarketDataStream
    fencing: dict[str, Any] = {}
    if scenario.fenced:
        fencing["connection_guard"] = await armed_guard(client)
    stream = stream_class(
        "bench-key",
        "bench-secret",
        client,
        EventPublisher(client=client),
        price_ttl=300,
        url=sim_url,
        compression=None,
        reconnect_base_delay=0.5,
        reconnect_max_delay=2.0,
        **fencing,
    )
    names = [f"SYM{i:03d}" for i in range(scenario.symbols)] if scenario.symbols else ["*"]
    await stream.subscribe_symbols(names)
    task = asyncio.create_task(stream.start())
    if cluster is None:
        subscriber = Peer(subscriber_main, params, scenario.sample_every)
    else:
        names = [f"SYM{i:03d}" for i in range(scenario.symbols)]
        nodes = await shard_channels(cluster, names)
        subscriber = Peer(cluster_subscriber_main, nodes, scenario.sample_every)
    try:
        await subscriber.reply()  # subscribed
        while not stream.is_connected():  # noqa: ASYNC110 (the stream exposes no event)
            await asyncio.sleep(0.01)
        sent_before = (await sim.ask(("stats",)))[1]
        rss_start = _rss_mb()
        cpu_start = time.process_time()
        redis_start = measure_redis(list(redis_pids))
        sim.tell(("rate", scenario.rate, scenario.batch))
        await asyncio.sleep(scenario.duration)
        window = await subscriber.ask(("report",))
        cpu = time.process_time() - cpu_start
        redis_cpu = [
            b - a for a, b in zip(redis_start, measure_redis(list(redis_pids)), strict=True)
        ]
        sim.tell(("rate", 0.0, None))
        rss_end = _rss_mb()
        # A frame being written when the rate dropped is counted once its send completes.
        await asyncio.sleep(0.3)
        sent = (await sim.ask(("stats",)))[1] - sent_before
        final = await _drain(subscriber, sent, patience=2.0 if scenario.mode == "naive" else 10.0)
    finally:
        sim.tell(("rate", 0.0, None))
        subscriber.close()
        await stream.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    window_count = window[1]
    received, latencies = final[1], sorted(final[4])
    # The window opens when the rate is set; quotes/s over the window as the subscriber saw it.
    quotes_per_s = window_count / scenario.duration
    return Result(
        scenario=scenario,
        quotes_per_s=quotes_per_s,
        cpu_us_per_quote=cpu / window_count * 1e6 if window_count else None,
        p50_ms=_percentile(latencies, 0.50) if latencies else None,
        p99_ms=_percentile(latencies, 0.99) if latencies else None,
        max_ms=latencies[-1] / 1e6 if latencies else None,
        sent=sent,
        received=received,
        lost=None if scenario.mode == "naive" else sent - received,
        rss_start_mb=rss_start,
        rss_end_mb=rss_end,
        extra={
            **(
                {"latency_samples": len(latencies), "mean_ms": statistics.fmean(latencies) / 1e6}
                if latencies
                else {}
            ),
            # Each Redis process's CPU per delivered quote (one server, or each primary).
            "redis_cpu_us_per_quote_each": [c / window_count * 1e6 for c in redis_cpu]
            if window_count
            else [],
        },
    )


async def _drain(subscriber: Peer, sent: int, patience: float) -> Any:
    """Wait until everything sent has arrived, or nothing arrived for ``patience`` seconds."""
    report = await subscriber.ask(("report",))
    quiet_since = time.monotonic()
    while report[1] < sent and time.monotonic() - quiet_since < patience:
        await asyncio.sleep(0.1)
        latest = await subscriber.ask(("report",))
        if latest[1] != report[1]:
            quiet_since = time.monotonic()
        report = latest
    return report


async def _bench(options: BenchOptions) -> list[Result]:
    import uvloop  # noqa: F401  (the service runs on uvloop under uvicorn; so does this)

    chosen = [s for s in scenarios(options) if not options.only or s.name in options.only]
    results: list[Result] = []
    async with EmbeddedRedis() as redis_server:
        sim = Peer(
            simulator_main,
            SimulatorConfig(
                port=0,
                rate=0.0,
                api_key="bench-key",
                secret_key="bench-secret",
                compression=False,
                connection_limit=None,
                seed=7,
                # What "*" streams (the whole-market scenario): a Zipf-skewed tape.
                universe_size=10_000,
                universe_skew=1.0,
            ),
        )
        try:
            _, port = await sim.reply()
            sim_url = f"ws://127.0.0.1:{port}/v2/sip"
            # One Redis's ceiling at SET + PUBLISH per quote, measured beside the scenarios.
            ceiling = await measure_ceiling(redis_server.params)
            for scenario in chosen:
                print(f"running {scenario.name} ({scenario.duration:g}s) ...", flush=True)
                if scenario.mode == "cluster":
                    async with EmbeddedRedisCluster(primaries=3) as cluster:
                        pids = tuple(n.pid for n in cluster.primaries() if n.pid is not None)
                        result = await _run_scenario(
                            scenario, sim, sim_url, cluster.params, cluster=cluster, redis_pids=pids
                        )
                else:
                    pid = redis_server.pid
                    result = await _run_scenario(
                        scenario,
                        sim,
                        sim_url,
                        redis_server.params,
                        redis_pids=(pid,) if pid else (),
                    )
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
        "simulator and subscriber in their own processes, private redis-server",
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
