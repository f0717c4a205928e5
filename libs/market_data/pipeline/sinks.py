"""Which price sink a stream gets: one Redis (``RedisPriceSink``) or a Redis Cluster.

``PriceSink`` is what the stream, the gap fill, ``/health`` and ``/metrics`` use of a
sink; both sinks have it. ``build_sink`` picks by the client: a
``ClusterRedisClient`` (``REDIS_CLUSTER_NODES``) gets :class:`ClusterPriceSink`, one
pipelined writer per primary (docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.cluster_sink import ClusterPriceSink
from libs.market_data.pipeline.condition import SinkState
from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.pipeline.sink import RedisPriceSink
from libs.market_data.pipeline.stats import SinkStats
from libs.redis_client import RedisClient
from libs.redis_client.cluster import ClusterRedisClient
from libs.redis_client.writer import ConnectionGuard
from libs.telemetry import Histogram

__all__ = ["PriceSink", "build_sink", "keyspace_for"]


class PriceSink(Protocol):
    """The sink's interface (see ``pipeline/sink.py`` for the rules behind each)."""

    notice_listener: Callable[[str, Mapping[str, Any]], None] | None

    @property
    def state(self) -> SinkState: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def connected(self) -> bool: ...
    @property
    def pending_symbols(self) -> int: ...
    @property
    def write_timeout(self) -> float: ...
    @property
    def round_trip_seconds(self) -> Histogram: ...
    def problem(self) -> str | None: ...
    def snapshot(self) -> SinkStats: ...
    def stats(self) -> dict[str, Any]: ...
    async def start(self) -> None: ...
    async def flush(self, timeout: float = 5.0) -> bool: ...
    async def close(self, timeout: float = 5.0) -> None: ...
    async def write(self, updates: Sequence[PriceUpdate]) -> None: ...
    def resend_latest(self) -> int: ...
    def forget(self, topics: Iterable[str]) -> None: ...
    def forget_all(self) -> None: ...
    def publish_status(self, event: str, details: Mapping[str, Any]) -> None: ...
    def publish_status_after_writes(self, event: str, details: Mapping[str, Any]) -> None: ...


def keyspace_for(client: RedisClient, namespace: str = "") -> KeySpace:
    """The names for ``client``: hash-tagged on a cluster (``price:{AAPL}``)."""
    return KeySpace(namespace, cluster=isinstance(client, ClusterRedisClient))


def build_sink(
    client: RedisClient,
    ttl: int,
    *,
    write_timeout: float,
    keys: KeySpace,
    guard: ConnectionGuard | None = None,
) -> PriceSink:
    """A cluster sink for a ``ClusterRedisClient``, else the one-connection sink."""
    if isinstance(client, ClusterRedisClient):
        return ClusterPriceSink(client, ttl, write_timeout=write_timeout, keys=keys, guard=guard)
    return RedisPriceSink(client.params, ttl, write_timeout=write_timeout, keys=keys, guard=guard)
