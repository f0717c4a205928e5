"""One scenario against the service as users run it: ``market-data serve`` in its process.

Topology, all on loopback, each part its own process: simulator --WebSocket--> service
(the uvicorn app with its HTTP API up) --> private redis-server (or a 3-primary
cluster) --> subscriber (counts ``price.updated.*``). The bench subscribes through
``POST /api/v1/subscribe``, sets the simulator's rate, waits a warm-up, then measures a
window: quotes the subscriber received, and over them each process's CPU seconds from
``/proc`` (service, simulator, Redis, subscriber: where the machine's cores go). Meanwhile
it probes ``GET /health`` every half second (latency, body size) and samples the
service's RSS every second. Latency is the subscriber's receipt minus the quote's ``t``
(the simulator's send time); lost is what the simulator sent minus what arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from apps.bench.cluster import cluster_subscriber_main, measure_redis, shard_channels
from apps.bench.processes import Peer, subscriber_main
from apps.bench.scenarios import Result, Scenario
from apps.bench.service import process_cpu, rss_mb, start_service, wait_healthy
from apps.bench.stats import drain, latency_figures, percentile
from apps.market_data_service.cli.instances import free_port, stop_instances
from libs.redis_embedded import EmbeddedRedis
from libs.redis_embedded.cluster import EmbeddedRedisCluster

__all__ = ["HealthProbe", "run_served"]

WARMUP_S: Final = 1.0  # before the window: connections, the simulator's tape, caches
_PROBE_EVERY_S: Final = 0.5
_RSS_EVERY_S: Final = 1.0


@dataclass
class HealthProbe:
    """``GET /health`` while the feed runs: each answer's latency and body size."""

    latencies_ms: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    quote_paths: set[str] = field(default_factory=set)  # what the service said it runs

    async def run(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                reply = await http.get("/health", timeout=5.0)
            except httpx.HTTPError:
                self.errors += 1
            else:
                self.latencies_ms.append((time.perf_counter() - started) * 1e3)
                self.sizes.append(len(reply.content))
                self.statuses[reply.status_code] = self.statuses.get(reply.status_code, 0) + 1
                with contextlib.suppress(ValueError, AttributeError):
                    self.quote_paths.add(str(reply.json().get("quote_path")))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _PROBE_EVERY_S)

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "health_probes": len(ordered) + self.errors,
            "health_errors": self.errors,
            "health_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "health_p50_ms": percentile(ordered, 0.5) if ordered else None,
            "health_max_ms": ordered[-1] if ordered else None,
            "health_max_bytes": max(self.sizes) if self.sizes else None,
            "quote_paths": sorted(self.quote_paths),
        }


def _names(scenario: Scenario) -> list[str]:
    return [f"SYM{i:03d}" for i in range(scenario.symbols)] if scenario.symbols else ["*"]


def _extra_env(scenario: Scenario, cluster: EmbeddedRedisCluster | None) -> dict[str, str]:
    # The elector's role changes are warnings; the bench's output is its figures.
    env = {"LOG_LEVEL": "ERROR"}
    if cluster is not None:  # docs/cluster.md
        env["REDIS_CLUSTER_NODES"] = cluster.nodes_spec
    if scenario.fenced:  # docs/leadership.md: the leader's writer is fenced
        env.update(LEADER_ELECTION="redis", INSTANCE_ID="bench")
    if not scenario.native:
        env["MARKET_DATA_NATIVE"] = "0"
    return env


async def _subscribed(sim: Peer, names: list[str], timeout: float = 30.0) -> None:
    """Until the simulator's sessions stream every name the service subscribed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        subscribed = set((await sim.ask(("subscribed",)))[1])
        if subscribed >= set(names):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the service's subscription did not reach the simulator")


async def _settled(http: httpx.AsyncClient, subscriber: Peer, timeout: float = 30.0) -> int:
    """The subscriber's count once the subscription's gap fill (REST quotes written and
    published as events: docs/architecture.md, "Gap fill") is over; before the feed runs."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        latest = (await subscriber.ask(("count",)))[1]
        health = (await http.get("/health")).json()
        if latest == count and not (health.get("gap_fill") or {}).get("running"):
            return count
        count = latest
        await asyncio.sleep(0.5)
    raise RuntimeError("the subscription's gap fill did not settle")


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: process_cpu(pid) for name, pid in pids.items()}


async def run_served(
    scenario: Scenario,
    sim: Peer,
    sim_port: int,
    redis_server: EmbeddedRedis,
    *,
    cluster: EmbeddedRedisCluster | None = None,
) -> Result:
    """Run ``scenario`` against a fresh ``market-data serve``; see the module docstring."""
    names = _names(scenario)
    if cluster is None:
        redis_pids = [redis_server.pid] if redis_server.pid else []
        subscriber = Peer(subscriber_main, redis_server.params, scenario.sample_every)
    else:
        redis_pids = [n.pid for n in cluster.primaries() if n.pid is not None]
        nodes = await shard_channels(cluster, names)
        subscriber = Peer(cluster_subscriber_main, nodes, scenario.sample_every)
    port = free_port()
    service = start_service(sim_port, redis_server, port, _extra_env(scenario, cluster))
    probe, stop = HealthProbe(), asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await wait_healthy(http, service)
            await subscriber.reply()  # subscribed to the events
            reply = await http.post("/api/v1/subscribe", json={"symbols": names})
            reply.raise_for_status()
            await _subscribed(sim, names)
            pids = {"service": service.pid, "simulator": sim.process.pid or 0,
                    "subscriber": subscriber.process.pid or 0}  # fmt: skip
            received_before = await _settled(http, subscriber)
            rss_idle = rss_mb(service.pid)
            sent_before = (await sim.ask(("stats",)))[1]
            sim.tell(("rate", scenario.rate, scenario.batch))
            await asyncio.sleep(WARMUP_S)
            _, count_before, samples_before = await subscriber.ask(("count",))
            cpu_before, redis_before = _cpu(pids), measure_redis(redis_pids)
            started = time.monotonic()
            prober = asyncio.create_task(probe.run(http, stop))
            rss = [rss_mb(service.pid)]
            while (left := scenario.duration - (time.monotonic() - started)) > 0:
                await asyncio.sleep(min(_RSS_EVERY_S, left))
                rss.append(rss_mb(service.pid))
            _, count_after, _ = await subscriber.ask(("count",))
            cpu_after, redis_after = _cpu(pids), measure_redis(redis_pids)
            wall = time.monotonic() - started
            stop.set()
            await prober
            sim.tell(("rate", 0.0, None))
            sent, received, samples = await drain(
                subscriber, sim, sent_before, received_before, patience=10.0
            )
    finally:
        sim.tell(("rate", 0.0, None))
        stop.set()
        subscriber.close()
        await stop_instances([service])
    quotes = count_after - count_before
    per_quote = {name: (cpu_after[name] - cpu_before[name]) / quotes * 1e6 if quotes else None
                 for name in pids}  # fmt: skip
    redis_each = [(b - a) / quotes * 1e6 if quotes else 0.0
                  for a, b in zip(redis_before, redis_after, strict=True)]  # fmt: skip
    latencies = sorted(samples[samples_before:])
    p50, p99, worst = latency_figures(latencies)
    return Result(
        scenario=scenario,
        quotes_per_s=quotes / wall,
        cpu_us_per_quote=per_quote["service"],
        p50_ms=p50,
        p99_ms=p99,
        max_ms=worst,
        sent=sent,
        received=received,
        lost=sent - received,
        rss_start_mb=rss[0],
        rss_end_mb=rss[-1],
        rss_max_mb=max(rss),
        sim_cpu_us_per_quote=per_quote["simulator"],
        redis_cpu_us_per_quote=sum(redis_each) if quotes else None,
        subscriber_cpu_us_per_quote=per_quote["subscriber"],
        extra={
            **probe.figures(),
            "rss_idle_mb": rss_idle,
            "rss_samples_mb": rss,
            "window_s": wall,
            "warmup_s": WARMUP_S,
            "latency_samples": len(latencies),
            # Each Redis process's CPU per delivered quote (one server, or each primary).
            "redis_cpu_us_per_quote_each": redis_each,
        },
    )
