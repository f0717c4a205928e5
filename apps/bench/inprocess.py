"""The naive scenario: the spec's per-quote design, run inside the bench's own process.

A comparison baseline, not the service: ``NaiveMarketDataStream`` (apps/bench/naive.py)
on this process's loop, fed by the simulator and counted by the subscriber process as the
served scenarios are (apps/bench/served.py). Its CPU per quote is this process's.
"""

from __future__ import annotations

import asyncio
import os
import time

from apps.bench.cluster import measure_redis
from apps.bench.naive import NaiveMarketDataStream
from apps.bench.processes import Peer, subscriber_main
from apps.bench.scenarios import Result, Scenario
from apps.bench.service import process_cpu, rss_mb
from apps.bench.stats import drain, latency_figures
from libs.redis_client import EventPublisher, RedisClient
from libs.redis_embedded import EmbeddedRedis
from libs.tasks import cancel_and_wait

__all__ = ["run_naive"]


async def run_naive(scenario: Scenario, sim: Peer, sim_port: int, redis: EmbeddedRedis) -> Result:
    client = RedisClient(params=redis.params)
    stream = NaiveMarketDataStream(
        "bench-key",
        "bench-secret",
        client,
        EventPublisher(client=client),
        price_ttl=300,
        url=f"ws://127.0.0.1:{sim_port}/v2/sip",
        compression=None,
        reconnect_base_delay=0.5,
        reconnect_max_delay=2.0,
    )
    await stream.subscribe_symbols([f"SYM{i:03d}" for i in range(scenario.symbols)])
    task = asyncio.create_task(stream.start())
    subscriber = Peer(subscriber_main, redis.params, scenario.sample_every)
    redis_pids = [redis.pid] if redis.pid else []
    sim_pid = sim.process.pid or 0
    try:
        await subscriber.reply()  # subscribed
        while not stream.is_connected():  # noqa: ASYNC110 (the stream exposes no event)
            await asyncio.sleep(0.01)
        sent_before = (await sim.ask(("stats",)))[1]
        rss_start = rss_mb(os.getpid())
        cpu_start, sim_start = time.process_time(), process_cpu(sim_pid)
        redis_start = measure_redis(redis_pids)
        started = time.monotonic()
        sim.tell(("rate", scenario.rate, scenario.batch))
        await asyncio.sleep(scenario.duration)
        window = (await subscriber.ask(("count",)))[1]
        cpu, sim_cpu = time.process_time() - cpu_start, process_cpu(sim_pid) - sim_start
        redis_cpu = sum(measure_redis(redis_pids)) - sum(redis_start)
        wall = time.monotonic() - started
        sim.tell(("rate", 0.0, None))
        rss_end = rss_mb(os.getpid())
        sent, received, samples = await drain(subscriber, sim, sent_before, 0, patience=2.0)
    finally:
        sim.tell(("rate", 0.0, None))
        subscriber.close()
        await stream.stop()
        await cancel_and_wait(task, quiet=True)
        await client.close()
    latencies = sorted(samples)
    p50, p99, worst = latency_figures(latencies)

    def per_quote(seconds: float) -> float | None:
        return seconds / window * 1e6 if window else None

    return Result(
        scenario=scenario,
        quotes_per_s=window / wall,
        cpu_us_per_quote=per_quote(cpu),
        p50_ms=p50,
        p99_ms=p99,
        max_ms=worst,
        sent=sent,
        received=received,
        lost=None,  # the naive design's own backlog outlives the drain: not a loss figure
        rss_start_mb=rss_start,
        rss_end_mb=rss_end,
        sim_cpu_us_per_quote=per_quote(sim_cpu),
        redis_cpu_us_per_quote=per_quote(redis_cpu),
        extra={"latency_samples": len(latencies), "in_process": True},
    )
