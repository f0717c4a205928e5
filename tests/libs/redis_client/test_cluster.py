"""Redis Cluster: the private cluster, the seed-node setting, ClusterRedisClient, the names."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from libs.market_data.keys import KeySpace
from libs.redis_client import RedisConnectionParams
from libs.redis_client.cluster import ClusterParams, ClusterRedisClient, parse_cluster_nodes
from libs.redis_embedded import cluster_admin
from libs.redis_embedded.cluster import EmbeddedRedisCluster

SYMBOLS = [f"S{i:03d}" for i in range(60)]


def test_the_private_cluster_serves_every_slot_from_three_primaries(
    redis_cluster: EmbeddedRedisCluster,
) -> None:
    primaries = redis_cluster.primaries()
    assert len(primaries) == 3
    for node in primaries:
        with redis_cluster.client(node) as client:
            assert cluster_admin.cluster_ok(client, 3)
    owners = {redis_cluster.owner_of(slot).port for slot in (0, 8000, 16383)}
    assert owners == {node.port for node in primaries}


def test_cluster_nodes_parse_and_refuse_what_is_not_host_port() -> None:
    assert parse_cluster_nodes("127.0.0.1:7000, 127.0.0.1:7001,[::1]:7002") == (
        ("127.0.0.1", 7000),
        ("127.0.0.1", 7001),
        ("::1", 7002),
    )
    for bad in ("", "127.0.0.1", "host:port", "h:0", "h:70000"):
        with pytest.raises(ValueError):
            parse_cluster_nodes(bad)
    with pytest.raises(ValueError, match="database 0"):
        ClusterParams.parse("h:1", RedisConnectionParams(db=2))


def test_the_password_never_shows_in_the_cluster_description() -> None:
    params = ClusterParams.parse("h:1,h:2", RedisConnectionParams(password="s3cret", ssl=True))
    assert "s3cret" not in repr(params)
    assert params.redacted() == "h:1,h:2 (tls, password=***)"
    assert params.node("h", 2).password == "s3cret"


def test_cluster_names_keep_the_symbol_in_braces_and_share_its_slot() -> None:
    keys = KeySpace(cluster=True)
    assert (keys.price_key("AAPL"), keys.price_channel("AAPL")) == (
        "price:{AAPL}",
        "price.updated.{AAPL}",
    )
    assert (keys.trade_key("AAPL"), keys.bar_channel("BTC/USD")) == (
        "trade:{AAPL}",
        "bar.updated.{BTC/USD}",
    )
    for symbol in SYMBOLS:
        slot = key_slot(keys.price_key(symbol).encode())
        assert key_slot(keys.price_channel(symbol).encode()) == slot
        assert key_slot(keys.trade_key(symbol).encode()) == slot
    assert keys.symbol_in("price:{AAPL}", keys.price_key_prefix) == "AAPL"
    # Standalone names stay exactly the spec's.
    assert KeySpace().price_key("AAPL") == "price:AAPL"
    assert KeySpace("paper").price_channel("AAPL") == "paper:price.updated.AAPL"


async def test_cluster_client_reads_and_writes_across_slots(cluster_params: ClusterParams) -> None:
    keys = KeySpace(cluster=True)
    async with ClusterRedisClient(cluster_params) as client:
        for symbol in SYMBOLS:
            await client.setex(keys.price_key(symbol), 60, symbol.encode())
        values = await client.mget([keys.price_key(s) for s in [*SYMBOLS, "NONE"]])
        assert values == [s.encode() for s in SYMBOLS] + [None]
        found = await client.keys("price:*")
        assert sorted(found) == sorted(keys.price_key(s) for s in SYMBOLS)
        await client.replace_hash("market_data:subscriptions", {"AAPL": "manual"})
        assert await client.hgetall("market_data:subscriptions") == {"AAPL": "manual"}
        topology = await client.topology()
        assert len(topology.primaries()) == 3
        assert None not in topology.owners
