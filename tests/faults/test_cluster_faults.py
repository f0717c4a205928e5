"""Redis Cluster faults: a slot moved while streaming, a primary killed and replaced.

Each test streams frames for symbols spread over every shard, breaks the cluster in
the middle, and ends by checking that every symbol's cached record on its slot's
owner is the newest one written, and that a subscriber saw every update or a resync.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from redis.crc import key_slot

from libs.market_data import PriceSubscriber
from libs.market_data.pipeline.sink import SinkState
from libs.redis_client.cluster import ClusterParams
from libs.redis_embedded import cluster_admin
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from tests.fixtures.cluster import ClusterFactory, params_of
from tests.fixtures.cluster_stream import (
    KEYS,
    ClusterWriter,
    cached,
    cluster_writer,
    collecting,
    symbols,
)
from tests.helpers import eventually, eventually_blocking

NAMES = symbols(30)


async def converged(cluster: EmbeddedRedisCluster, w: ClusterWriter, sub: PriceSubscriber) -> None:
    """Every symbol's record on its owner is the newest written, and the subscriber has it."""

    lagging: list[str] = []

    def done() -> bool:
        lagging.clear()
        for symbol in NAMES:
            record = cached(cluster, symbol)
            seen = sub.latest(symbol)
            if record is None or record.seq != w.n:
                lagging.append(f"{symbol}: cached {record and record.seq}")
            elif seen is None or seen.seq != w.n:
                lagging.append(f"{symbol}: subscriber {seen and seen.seq}")
        return not lagging

    try:
        await eventually_blocking(done, timeout=20, what="cache and subscriber on the newest")
    except AssertionError as exc:
        sink = w.sink
        state = (
            f"subscriber reconnects {sub.reconnects}, resyncs {sub.resyncs}; sink {sink.state}, "
            f"problem {sink.problem()!r}, held {sink.pending_symbols}"
        )
        nodes = await asyncio.to_thread(_every_node, cluster, lagging[0].split(":")[0])
        raise AssertionError(
            f"{exc}: want seq {w.n}; {state}; {lagging[:5]}; shards {_shards(w)}; nodes {nodes}"
        ) from None


def _shards(w: ClusterWriter) -> list[str]:
    return [
        f"{address[1]} {s.state.value} written {s.quotes_written} refused {s.quotes_refused} "
        f"deferred {s.quotes_deferred} redirected {s.quotes_redirected} "
        f"in flight {s.snapshot().batches_in_flight} error {s.last_error!r}"
        for address, s in w.sink.shards.items()
    ]


def _every_node(cluster: EmbeddedRedisCluster, symbol: str) -> list[str]:
    """Each live node's role, the owner it names for ``symbol``'s slot, and its copy."""
    key = KEYS.price_key(symbol)
    seen = []
    for node in cluster.nodes:
        if not node.running:
            seen.append(f"{node.port} dead")
            continue
        with cluster.client(node) as client:
            role = client.info("replication").get("role")
            owner = cluster_admin.slot_owner_port(client, key_slot(key.encode()))
            try:
                raw = client.get(key)
                copy = "none" if raw is None else f"seq {json.loads(raw)['seq']}"
            except redis.RedisError as exc:
                copy = str(exc)
        seen.append(f"{node.port} {role} owner {owner} {copy}")
    return seen


@pytest.mark.timeout(120)
async def test_moving_a_slot_while_streaming_loses_nothing(
    redis_cluster: EmbeddedRedisCluster, cluster_params: ClusterParams
) -> None:
    moving = NAMES[0]
    slot = key_slot(KEYS.price_key(moving).encode())
    source = redis_cluster.owner_of(slot)
    target = next(n for n in redis_cluster.primaries() if n is not source)
    async with cluster_writer(cluster_params) as w:
        await w.frame(NAMES)
        assert await w.sink.flush(5)
        collector = await collecting(cluster_params, list(NAMES))
        sub = collector.sub
        streaming = True

        async def stream() -> None:
            while streaming:
                await w.frame(NAMES)
                await asyncio.sleep(0.002)

        task = asyncio.create_task(stream())
        clients = [redis_cluster.client(n) for n in redis_cluster.nodes]
        try:
            src = clients[redis_cluster.nodes.index(source)]
            dst = clients[redis_cluster.nodes.index(target)]
            moved = await asyncio.to_thread(
                cluster_admin.migrate_slot, src, dst, slot, clients, target_port=target.port
            )
            assert moved >= 1
            await asyncio.to_thread(redis_cluster.wait_owner, slot, target)
            # Writes go on after the move, first to the old owner (-MOVED), then rerouted.
            await eventually(
                lambda: sum(s.quotes_redirected for s in w.sink.shards.values()) > 0,
                timeout=10,
                what="a write redirected by -MOVED",
            )
            streaming = False
            await task
            await w.frame(NAMES)
            await converged(redis_cluster, w, sub)
            assert redis_cluster.owner_of(slot) is target
            assert w.sink.state is SinkState.UP
        finally:
            streaming = False
            for client in clients:
                client.close()
            await collector.stop()
            # The shared cluster goes back as it was for the next tests.
            async with cluster_writer(cluster_params):
                pass
            back = [redis_cluster.client(n) for n in redis_cluster.nodes]
            try:
                dst = back[redis_cluster.nodes.index(target)]
                src = back[redis_cluster.nodes.index(source)]
                await asyncio.to_thread(
                    cluster_admin.migrate_slot, dst, src, slot, back, target_port=source.port
                )
                await asyncio.to_thread(redis_cluster.wait_owner, slot, source)
            finally:
                for client in back:
                    client.close()


@pytest.mark.timeout(180)
async def test_a_killed_primary_replaced_by_its_replica_gets_the_newest_quotes(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = cluster_factory(primaries=3, replicas=1)
    params = params_of(cluster)
    async with cluster_writer(params) as w:
        await w.frame(NAMES)
        assert await w.sink.flush(5)
        collector = await collecting(params, list(NAMES))
        sub = collector.sub
        notices: list[tuple[str, dict[str, object]]] = []
        w.sink.notice_listener = lambda event, details: notices.append((event, dict(details)))
        try:
            victim = cluster.owner_of(key_slot(KEYS.price_key(NAMES[0]).encode()))
            replica = cluster.replicas_of(victim)[0]
            victim.kill()
            for _ in range(20):
                await w.frame(NAMES)
            # /health reads this: the missing shard is named, with its slots.
            await eventually(
                lambda: f"shard {victim.address}" in (w.sink.problem() or ""),
                what="the missing shard named",
            )
            assert w.sink.pending_symbols > 0
            await asyncio.to_thread(cluster.failover, replica, takeover=True)
            # No quote after the failover: what was held for the dead primary must land.
            await converged(cluster, w, sub)
            await eventually(lambda: w.sink.problem() is None, timeout=10, what="no problem")
            assert collector.kinds("resync"), "the subscriber lived through a gap"
            # The dead primary's sink is gone: the cluster sink closes its episode, after
            # the rewrites on the successor, and subscribers hear it (docs/cluster.md).
            await eventually(lambda: notices, timeout=10, what="a notice")
            ((event, details),) = notices
            assert event == "redis.recovered"
            assert details["shard"] == victim.address
            assert details["cause"] == "down"
            assert NAMES[0] in details["symbols_rewritten"]  # type: ignore[operator]
            await eventually(
                lambda: any(u.reason == "notice:redis.recovered" for u in collector.resyncs()),
                what="the subscriber to hear it",
            )
        finally:
            await collector.stop()
