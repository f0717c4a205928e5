"""The Redis Cluster scenario of ``make bench``: one Redis against 3 primaries, one run.

Same topology as the other served scenarios (simulator -> ``market-data serve`` ->
Redis -> subscriber, each its own process: apps/bench/served.py), with the Redis side
either the run's private ``redis-server`` (``throughput``) or a private 3-primary
cluster (``cluster-3``, the service given ``REDIS_CLUSTER_NODES``): the service splits
each frame per primary and sends events with ``SPUBLISH``; the subscriber
``SSUBSCRIBE``s every channel on its owner. Besides the service's CPU per quote, each
Redis process's CPU per quote is read from ``/proc``: that is the figure the estimate
for N primaries on N machines rests on (docs/cluster.md, "Figures").
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection
from typing import Any

from redis.crc import key_slot

from apps.bench.processes import EventCounter, Tally, _serve_pipe
from apps.bench.service import process_cpu
from libs.market_data.keys import KeySpace
from libs.redis_client.cluster import ClusterParams, ClusterRedisClient
from libs.redis_client.writer import pack_commands
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from libs.tasks import cancel_and_wait

__all__ = [
    "cluster_client",
    "cluster_lines",
    "cluster_subscriber_main",
    "measure_redis",
    "process_cpu",
    "shard_channels",
]


class ShardCounter(EventCounter):
    MARKER = b"$8\r\nsmessage\r\n"


def cluster_subscriber_main(
    conn: Connection, nodes: list[tuple[str, int, list[str]]], sample_every: int
) -> None:
    """Count sharded events of every channel, each on its owner; like ``subscriber_main``."""
    import uvloop

    tally = Tally(sample_every)

    async def main() -> None:
        opened = []
        for host, port, channels in nodes:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(pack_commands([("SSUBSCRIBE", channel) for channel in channels]))
            opened.append((reader, writer, len(channels)))

        done = _serve_pipe(conn, tally.handle)
        waiting = {"nodes": len(opened)}

        async def pump(reader: asyncio.StreamReader, channels: int) -> None:
            counter = ShardCounter()
            confirmed = 0
            while True:
                data = await reader.read(1 << 20)
                if not data:
                    return
                now = time.time_ns()
                if confirmed < channels:
                    confirmed += data.count(b"ssubscribe")
                    if confirmed >= channels:
                        waiting["nodes"] -= 1
                        if waiting["nodes"] == 0:
                            conn.send(("ready",))
                tally.take(counter, data, now)

        tasks = [asyncio.create_task(pump(r, n)) for r, _, n in opened]
        await done.wait()
        await cancel_and_wait(*tasks, quiet=True)
        for _, writer, _ in opened:
            writer.close()

    uvloop.run(main())


async def shard_channels(
    cluster: EmbeddedRedisCluster, symbols: list[str]
) -> list[tuple[str, int, list[str]]]:
    keys = KeySpace(cluster=True)
    by_node: dict[int, list[str]] = {}
    for symbol in symbols:
        channel = keys.price_channel(symbol)
        node = await asyncio.to_thread(cluster.owner_of, key_slot(channel.encode()))
        by_node.setdefault(node.port, []).append(channel)
    return [("127.0.0.1", port, channels) for port, channels in by_node.items()]


def cluster_client(cluster: EmbeddedRedisCluster) -> ClusterRedisClient:
    return ClusterRedisClient(ClusterParams.parse(cluster.nodes_spec, cluster.params))


def measure_redis(pids: list[int]) -> list[float]:
    return [process_cpu(pid) for pid in pids]


def cluster_lines(by_name: dict[str, Any]) -> list[str]:
    """The one-Redis vs cluster comparison and the N-primaries estimate, as table lines."""
    one, three = by_name.get("throughput"), by_name.get("cluster-3")
    if not one or not three or not one.quotes_per_s or not three.quotes_per_s:
        return []
    lines = ["", "one Redis vs a 3-primary cluster (same machine, same run):"]
    for r in (one, three):
        per = r.extra.get("redis_cpu_us_per_quote_each", [])
        lines.append(
            f"  {r.scenario.name:<10} {r.quotes_per_s:>10,.0f} quotes/s  service "
            f"{r.cpu_us_per_quote or 0:.2f} µs/q  redis {sum(per):.2f} µs/q in all "
            f"({', '.join(f'{p:.2f}' for p in per)} per process)"
        )
    per_primary = three.extra.get("redis_cpu_us_per_quote_each", [])
    if per_primary:
        # A primary takes 1/N of the quotes; its CPU per quote of its own share:
        share = max(per_primary) * len(per_primary)
        ceiling = 1e6 / share if share else 0.0
        lines.append(
            f"  estimate: a primary spends {share:.2f} µs per quote it holds, so one core "
            f"carries ~{ceiling:,.0f} quotes/s; N primaries on N machines ~N x that "
            "(until the service process, one core, is the ceiling: run one per shard group)"
        )
    return lines
