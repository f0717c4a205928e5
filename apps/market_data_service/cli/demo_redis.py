"""The demo's private Redis: one ``redis-server``, or with ``--cluster`` a 3-primary cluster.

``demo_redis(cluster)`` starts it and hands back what the demo needs of it: the
settings that point the service there, a client for the board, and the feed of price
events (classic pub/sub on one Redis; sharded, per primary, on a cluster:
docs/cluster.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from libs.market_data.consumers.cluster_link import ShardedLink
from libs.market_data.keys import KeySpace
from libs.redis_client import RedisClient
from libs.redis_client.cluster import ClusterParams, ClusterRedisClient
from libs.redis_embedded import EmbeddedRedis
from libs.redis_embedded.cluster import EmbeddedRedisCluster

__all__ = ["DemoRedis", "EventFeed", "demo_redis"]


class EventFeed:
    """Price events of some symbols, read like redis-py's ``PubSub.get_message``."""

    def __init__(self, source: Any) -> None:
        self._source = source

    async def get_message(
        self, ignore_subscribe_messages: bool = True, timeout: float = 0.0
    ) -> dict[str, Any] | None:
        if isinstance(self._source, ShardedLink):
            message = await self._source.get_message(timeout)
        else:
            message = await self._source.get_message(
                ignore_subscribe_messages=ignore_subscribe_messages, timeout=timeout
            )
        if message is None or message["type"] not in ("message", "smessage"):
            return None
        return dict(message)

    async def aclose(self) -> None:
        await self._source.aclose()


class DemoRedis:
    """Where the demo's Redis is, and how to reach it."""

    def __init__(
        self, server: EmbeddedRedis | None = None, cluster: EmbeddedRedisCluster | None = None
    ) -> None:
        self._server = server
        self._cluster = cluster
        self.keys = KeySpace(cluster=cluster is not None)

    @property
    def url(self) -> str:
        if self._cluster is not None:
            return f"cluster {self._cluster.nodes_spec}"
        assert self._server is not None
        return self._server.url

    def settings(self) -> dict[str, Any]:
        """The service's Redis settings."""
        if self._cluster is not None:
            return {"redis_cluster_nodes": self._cluster.nodes_spec}
        assert self._server is not None
        return {"redis_host": self._server.host, "redis_port": self._server.port}

    def client(self) -> RedisClient:
        if self._cluster is not None:
            return ClusterRedisClient(self._cluster_params())
        assert self._server is not None
        return RedisClient(params=self._server.params)

    async def feed(self, client: RedisClient, symbols: Sequence[str]) -> EventFeed:
        if self._cluster is not None:
            link = ShardedLink(self._cluster_params(), self.keys)
            await link.open(self.keys.status_channel, list(symbols))
            return EventFeed(link)
        pubsub = client.redis.pubsub()
        await pubsub.subscribe(*(self.keys.price_channel(symbol) for symbol in symbols))
        return EventFeed(pubsub)

    def _cluster_params(self) -> ClusterParams:
        assert self._cluster is not None
        return ClusterParams.parse(self._cluster.nodes_spec, self._cluster.params)


@contextlib.asynccontextmanager
async def demo_redis(cluster: bool) -> AsyncIterator[DemoRedis]:
    """A private Redis (or cluster) for the demo's lifetime."""
    if cluster:
        async with EmbeddedRedisCluster(primaries=3) as nodes:
            yield DemoRedis(cluster=nodes)
    else:
        async with EmbeddedRedis() as server:
            yield DemoRedis(server=server)
