"""Runs the benchmark scenarios and reports them as a table and a JSON file.

Topology, all on loopback: simulator process --WebSocket--> this process (the service's
own ``AlpacaMarketDataStream``: decode, Decimal validation, SET+PUBLISH) --> private
redis-server --> subscriber process (PSUBSCRIBE price.updated.*). CPU per quote is this
process's CPU time over the measuring window divided by the quotes that reached the
subscriber in it; latency is the subscriber's receipt time minus the quote's ``t``,
which the simulator stamps when it sends the frame.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from apps.bench.ceiling import ceiling_figures, ceiling_lines, measure_ceiling
from apps.bench.cluster import (
    cluster_client,
    cluster_lines,
    cluster_subscriber_main,
    measure_redis,
    shard_channels,
)
from apps.bench.fencing import armed_guard
from apps.bench.naive import NaiveMarketDataStream
from apps.bench.processes import simulator_main, subscriber_main
from apps.simulator import SimulatorConfig
from libs.market_data import AlpacaMarketDataStream
from libs.redis_client import EventPublisher, RedisClient, RedisConnectionParams
from libs.redis_embedded import EmbeddedRedis
from libs.redis_embedded.cluster import EmbeddedRedisCluster

__all__ = ["BenchOptions", "Result", "Scenario", "run_bench"]

Mode = Literal["pipelined", "naive", "cluster"]


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: Mode
    symbols: int
    batch: int
    rate: float  # offered quotes/s; above capacity the socket's backpressure paces the sender
    duration: float
    sample_every: int  # latency of every n-th event
    # Leader election's connection fencing armed on the writer (docs/leadership.md)
    fenced: bool = False


@dataclass
class Result:
    scenario: Scenario
    quotes_per_s: float
    cpu_us_per_quote: float | None
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    sent: int
    received: int
    lost: int | None
    rss_start_mb: float
    rss_end_mb: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchOptions:
    duration: float = 10.0
    memory_duration: float = 60.0
    memory_rate: float = 100_000.0
    output: Path = Path("bench-results.json")
    only: tuple[str, ...] = ()


def scenarios(options: BenchOptions) -> list[Scenario]:
    d = options.duration
    return [
        Scenario("throughput", "pipelined", 100, 200, 2_000_000, d, 50),
        # The same with connection fencing (LEADER_ELECTION=redis): its ratio to the above.
        Scenario("throughput-fenced", "pipelined", 100, 200, 2_000_000, d, 50, fenced=True),
        Scenario("throughput-naive", "naive", 100, 200, 2_000_000, d, 5),
        # The throughput scenario on a private 3-primary Redis Cluster (docs/cluster.md).
        Scenario("cluster-3", "cluster", 100, 200, 2_000_000, d, 50),
        # symbols=0: "*", the simulator's 10,000-symbol Zipf-skewed universe (issue 14).
        Scenario("whole-market", "pipelined", 0, 200, 2_000_000, d, 50),
        Scenario("one-per-frame", "pipelined", 100, 1, 200_000, d, 20),
        Scenario("latency-20k", "pipelined", 100, 10, 20_000, d, 1),
        Scenario(
            "memory", "pipelined", 100, 200, options.memory_rate, options.memory_duration, 100
        ),
    ]


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


class _Peer:
    """A helper process and its pipe."""

    def __init__(self, target: Any, *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()

    async def ask(self, message: tuple[Any, ...], timeout: float = 30.0) -> Any:
        self.conn.send(message)
        return await self.reply(timeout)

    async def reply(self, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while not self.conn.poll():
            if time.monotonic() > deadline or not self.process.is_alive():
                raise RuntimeError(f"benchmark helper did not answer: {self.process.name}")
            await asyncio.sleep(0.005)
        return self.conn.recv()

    def tell(self, message: tuple[Any, ...]) -> None:
        self.conn.send(message)

    def close(self) -> None:
        if self.process.is_alive():
            self.conn.send(("stop",))
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


async def _run_scenario(
    scenario: Scenario,
    sim: _Peer,
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
        subscriber = _Peer(subscriber_main, params, scenario.sample_every)
    else:
        names = [f"SYM{i:03d}" for i in range(scenario.symbols)]
        nodes = await shard_channels(cluster, names)
        subscriber = _Peer(cluster_subscriber_main, nodes, scenario.sample_every)
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


async def _drain(subscriber: _Peer, sent: int, patience: float) -> Any:
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


def _table(results: list[Result]) -> str:
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


async def _bench(options: BenchOptions) -> list[Result]:
    import uvloop  # noqa: F401  (the service runs on uvloop under uvicorn; so does this)

    chosen = [s for s in scenarios(options) if not options.only or s.name in options.only]
    results: list[Result] = []
    async with EmbeddedRedis() as redis_server:
        sim = _Peer(
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
    print(_table(results))
    for line in ceiling_lines(results):
        print(line)
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "results": [{**asdict(r), "scenario": asdict(r.scenario)} for r in results],
    }
    options.output.write_text(json.dumps(document, indent=2))
    print(f"\nfigures written to {options.output}")
    if not options.only or "fanout" in options.only:
        return _fanout(options)
    return 0


def _fanout(options: BenchOptions) -> int:
    from apps.bench.fanout import FanoutOptions, run_fanout

    run_fanout(FanoutOptions(duration=options.duration))
    return 0
