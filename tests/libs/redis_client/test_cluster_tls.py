"""Redis Cluster with TLS and a password, as in standalone mode (docs/cluster.md, "TLS").

One private 3-primary cluster for the module, TLS-only (clients, cluster bus,
replication) and ``requirepass``: the settings (``REDIS_SSL``, ``REDIS_SSL_CA_CERTS``,
``REDIS_PASSWORD``) reach the cluster client, the cluster sink writes each price and its
event on the symbol's shard, and the subscriber hears them over sharded pub/sub.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from apps.market_data_service.config import Settings
from apps.market_data_service.service import MarketDataService
from libs.market_data.pipeline.sink import SinkState
from libs.redis_client.cluster import ClusterParams, ClusterRedisClient
from libs.redis_client.exceptions import RedisConnectionError
from libs.redis_embedded import TlsFiles
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from tests.fixtures.cluster import flush_cluster, running
from tests.fixtures.cluster_stream import (
    KEYS,
    cached,
    cluster_writer,
    collecting,
    holds_latest,
    symbols,
)
from tests.fixtures.tls import make_ca, make_server_certificate
from tests.helpers import eventually_blocking

PASSWORD = "cluster-s3cret pw"  # a space too: the config file must quote it
NAMES = symbols(30)
NO_RETRY = Retry(NoBackoff(), 0)


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisCluster]:
    directory = tmp_path_factory.mktemp("cluster-tls")
    ca_cert, ca_key = make_ca(directory, "cluster-test-ca")
    # The nodes present it to each other on the TLS bus: it must allow client auth.
    cert, key = make_server_certificate(directory, ca_cert, ca_key, client_auth=True)
    tls = TlsFiles(cert_file=str(cert), key_file=str(key), ca_cert_file=str(ca_cert))
    yield from running(EmbeddedRedisCluster(primaries=3, password=PASSWORD, tls=tls))


@pytest.fixture
def settings(tls_cluster: EmbeddedRedisCluster) -> Settings:
    """The service's settings for the cluster, every primary emptied first."""
    flush_cluster(tls_cluster)
    tls = tls_cluster.tls
    assert tls is not None
    return Settings(
        alpaca_api_key="AKTESTKEY0123456789",
        alpaca_secret_key="s3cr3t-VALUE-never-shown-0123456789",
        redis_cluster_nodes=tls_cluster.nodes[0].address,  # one seed: the rest is discovered
        redis_ssl=True,
        redis_ssl_ca_certs=Path(tls.ca_cert_file),
        redis_password=PASSWORD,
        _env_file=None,
    )


@pytest.fixture
def params(settings: Settings) -> ClusterParams:
    cluster = settings.cluster_params()
    assert cluster is not None
    return cluster


def test_the_nodes_take_neither_plain_text_nor_a_client_without_the_password(
    tls_cluster: EmbeddedRedisCluster,
) -> None:
    node = tls_cluster.nodes[0]
    # Plain text on a TLS port: the server waits for a TLS record that never comes.
    plain = redis.Redis(
        host=node.host, port=node.port, password=PASSWORD, socket_timeout=0.5, retry=NO_RETRY
    )
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        plain.ping()
    plain.close()
    anonymous = dataclasses.replace(node.params, password=None)
    anonymous_client = redis.Redis(**anonymous.redis_kwargs(), retry=NO_RETRY)
    with anonymous_client as client, pytest.raises(redis.AuthenticationError):
        client.ping()
    # The bus is TLS too: the nodes met and agree over it.
    with tls_cluster.client(node) as client:
        assert client.cluster("INFO")["cluster_known_nodes"] == "3"


async def test_the_settings_reach_the_cluster_client(
    settings: Settings, params: ClusterParams
) -> None:
    assert params.base.ssl and params.base.password == PASSWORD
    assert params.base.ssl_ca_certs == str(settings.redis_ssl_ca_certs)
    assert PASSWORD not in repr(params) and "tls" in params.redacted()
    async with ClusterRedisClient(params) as client:
        await client.setex(KEYS.price_key("AAPL"), 60, b"x")
        assert await client.mget([KEYS.price_key("AAPL"), KEYS.price_key("NONE")]) == [b"x", None]
        topology = await client.topology()
        assert len(topology.primaries()) == 3 and None not in topology.owners


async def test_the_client_verifies_the_nodes_certificate(
    params: ClusterParams, other_ca_file: str
) -> None:
    wrong_ca = dataclasses.replace(params.base, ssl_ca_certs=other_ca_file)
    async with ClusterRedisClient(ClusterParams(params.nodes, wrong_ca), retries=0) as client:
        # Our error, not redis-py's RedisClusterException (which is no RedisError).
        with pytest.raises(RedisConnectionError, match=r"cannot be reached.*CERTIFICATE_VERIFY"):
            await client.topology()
    wrong_password = dataclasses.replace(params.base, password="not-it")
    async with ClusterRedisClient(ClusterParams(params.nodes, wrong_password), retries=0) as c:
        with pytest.raises(RedisConnectionError, match="refused the credentials") as caught:
            await c.topology()
        assert "not-it" not in str(caught.value)


async def test_the_sink_writes_prices_and_events_on_their_shards_over_tls(
    tls_cluster: EmbeddedRedisCluster, settings: Settings, params: ClusterParams
) -> None:
    symbol = NAMES[3]
    channel = KEYS.price_channel(symbol)
    owner = tls_cluster.owner_of(key_slot(channel.encode()))
    sharded = redis.asyncio.Redis(**owner.params.redis_kwargs()).pubsub()
    await sharded.ssubscribe(channel)
    heard: list[bytes] = []

    async def pump() -> bool:
        message = await sharded.get_message(timeout=0.05)
        if message is not None and message["type"] == "smessage":
            heard.append(message["data"])
        return bool(heard)

    try:
        async with cluster_writer(params) as w:
            for _ in range(3):
                await w.frame(NAMES)
            assert await w.sink.flush(5)
            assert len(w.sink.shards) == 3 and w.sink.state is SinkState.UP
            for name in NAMES:
                record = cached(tls_cluster, name)
                assert record is not None and record.seq == 3, name
            # The service's own reads, built from the same settings.
            service = MarketDataService(settings)
            try:
                assert await service.prices.get(symbol) == cached(tls_cluster, symbol)
            finally:
                await service.redis_client.close()
                await service.broker.aclose()
            await w.frame((symbol,))
            assert await w.sink.flush(5)
            for _ in range(200):
                if await pump():
                    break
        assert len(heard) == 1 and symbol.encode() in heard[0]
    finally:
        await sharded.aclose()  # type: ignore[no-untyped-call]


async def test_the_subscriber_hears_every_symbol_over_sharded_pubsub_with_tls(
    tls_cluster: EmbeddedRedisCluster, params: ClusterParams
) -> None:
    async with cluster_writer(params) as w:
        await w.frame(NAMES)
        assert await w.sink.flush(5)
        collector = await collecting(params, list(NAMES))
        try:
            for _ in range(5):
                await w.frame(NAMES)
            assert await w.sink.flush(5)
            complete = functools.partial(holds_latest, tls_cluster, collector.sub, NAMES)
            await eventually_blocking(complete, timeout=10, what="every symbol's latest price")
            # Heard as events, not only read back from the cache at a resync.
            assert {u.symbol for u in collector.kinds("update")} == set(NAMES)
        finally:
            await collector.stop()
