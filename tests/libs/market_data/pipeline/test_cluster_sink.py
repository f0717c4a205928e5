"""ClusterPriceSink and the cluster subscriber against a real 3-primary Redis Cluster."""

from __future__ import annotations

import functools

import redis.asyncio
from redis.crc import key_slot

from libs.market_data.pipeline.sink import SinkState
from libs.redis_client.cluster import ClusterParams
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from tests.fixtures.cluster_stream import (
    KEYS,
    cached,
    cluster_writer,
    collecting,
    holds_latest,
    symbols,
)
from tests.helpers import eventually_blocking

NAMES = symbols(60)


async def test_each_record_lands_on_its_slot_owner_with_one_writer_per_primary(
    redis_cluster: EmbeddedRedisCluster, cluster_params: ClusterParams
) -> None:
    async with cluster_writer(cluster_params) as w:
        for _ in range(5):
            await w.frame(NAMES)
        assert await w.sink.flush(5)
        assert len(w.sink.shards) == 3
        assert w.sink.state is SinkState.UP
        assert w.sink.snapshot().quotes_written == 5 * len(NAMES)
        for symbol in NAMES:
            record = cached(redis_cluster, symbol)
            assert record is not None and record.seq == 5, symbol
        # Every primary took a share: the symbols spread over the slots.
        counts = []
        for node in redis_cluster.primaries():
            with redis_cluster.client(node) as client:
                counts.append(client.dbsize())
        assert sum(counts) == len(NAMES) and min(counts) > 0


async def test_events_go_out_with_spublish_on_the_symbols_shard(
    redis_cluster: EmbeddedRedisCluster, cluster_params: ClusterParams
) -> None:
    # A sharded subscription on each owner, and a classic one: only the former hears.
    symbol = NAMES[7]
    channel = KEYS.price_channel(symbol)
    owner = redis_cluster.owner_of(key_slot(channel.encode()))
    sharded = redis.asyncio.Redis(**owner.params.redis_kwargs()).pubsub()
    classic = redis.asyncio.Redis(**owner.params.redis_kwargs()).pubsub()
    await sharded.ssubscribe(channel)
    await classic.subscribe(channel)
    got: list[bytes] = []
    heard_classic: list[bytes] = []
    try:
        async with cluster_writer(cluster_params) as w:
            await w.frame((symbol,))
            assert await w.sink.flush(5)

            async def pump() -> bool:
                message = await sharded.get_message(timeout=0.05)
                if message is not None and message["type"] == "smessage":
                    got.append(message["data"])
                other = await classic.get_message(timeout=0.01)
                if other is not None and other["type"] == "message":
                    heard_classic.append(other["data"])
                return bool(got)

            for _ in range(200):
                if await pump():
                    break
        assert len(got) == 1 and symbol.encode() in got[0]
        assert heard_classic == []
    finally:
        await sharded.aclose()  # type: ignore[no-untyped-call]
        await classic.aclose()  # type: ignore[no-untyped-call]


async def test_the_subscriber_receives_every_symbol_across_shards(
    redis_cluster: EmbeddedRedisCluster, cluster_params: ClusterParams
) -> None:
    async with cluster_writer(cluster_params) as w:
        await w.frame(NAMES)
        assert await w.sink.flush(5)
        for wanted in (list(NAMES), "*"):
            collector = await collecting(cluster_params, wanted)
            sub = collector.sub
            try:
                for _ in range(10):
                    await w.frame(NAMES)
                complete = functools.partial(holds_latest, redis_cluster, sub, NAMES)
                await eventually_blocking(complete, timeout=10, what="every symbol's latest price")
                assert {u.symbol for u in collector.kinds("update")} == set(NAMES)
            finally:
                await collector.stop()
