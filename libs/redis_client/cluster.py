"""Redis Cluster: where the nodes are (``ClusterParams``), and ``ClusterRedisClient``.

``REDIS_CLUSTER_NODES=host:port,host:port`` names a few nodes to start from; the rest of
the topology (which primary owns which slots) is asked of the cluster by redis-py's
``RedisCluster`` (``CLUSTER SLOTS``/``SHARDS``), and refreshed when a node answers
``MOVED``. Password, user name and TLS are the standalone settings, used for every node
(docs/cluster.md).

``ClusterRedisClient`` is ``RedisClient`` on redis-py's ``RedisCluster``: the same
methods, each routed to the slot's owner; a multi-key read is split per slot (no
cross-slot ``MGET``), and ``SCAN`` walks every primary (redis-py's own).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Self, cast

import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from libs.redis_client.client import DEFAULT_RETRIES, RedisClient, translate_errors
from libs.redis_client.params import RedisConnectionParams

__all__ = ["SLOTS", "ClusterParams", "ClusterRedisClient", "Topology", "parse_cluster_nodes"]

logger = logging.getLogger(__name__)

SLOTS: Final = 16384


@dataclass(frozen=True)
class Topology:
    """The owner ``(host, port)`` of each of the 16384 slots (None: no primary now)."""

    owners: tuple[tuple[str, int] | None, ...]

    def primaries(self) -> list[tuple[str, int]]:
        return sorted({owner for owner in self.owners if owner is not None})

    def slot_ranges(self, primary: tuple[str, int]) -> str:
        """The slots of ``primary`` as ``0-5460,10923`` (for health and logs)."""
        ranges: list[str] = []
        start: int | None = None
        for slot in range(SLOTS + 1):
            owned = slot < SLOTS and self.owners[slot] == primary
            if owned and start is None:
                start = slot
            elif not owned and start is not None:
                ranges.append(f"{start}-{slot - 1}" if slot - 1 > start else str(start))
                start = None
        return ",".join(ranges)


def parse_cluster_nodes(text: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (``[v6]:port`` for IPv6) as pairs; ValueError if malformed."""
    nodes: list[tuple[str, int]] = []
    for item in text.split(","):
        entry = item.strip()
        if not entry:
            continue
        host, sep, port_text = entry.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"cluster node {entry!r} is not host:port")
        nodes.append((host, int(port_text)))
    if not nodes:
        raise ValueError("REDIS_CLUSTER_NODES names no node (host:port,host:port)")
    return tuple(dict.fromkeys(nodes))


@dataclass(frozen=True, repr=False)
class ClusterParams:
    """Seed nodes of a cluster, and how to authenticate to each (from ``base``)."""

    nodes: tuple[tuple[str, int], ...]
    base: RedisConnectionParams = dataclasses.field(default_factory=RedisConnectionParams)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("a cluster needs at least one seed node")
        if self.base.unix_socket_path is not None:
            raise ValueError("Redis Cluster nodes are TCP addresses, not a unix socket")
        if self.base.db != 0:
            raise ValueError("Redis Cluster has database 0 only (REDIS_DB must be 0)")

    @classmethod
    def parse(cls, text: str, base: RedisConnectionParams | None = None) -> ClusterParams:
        return cls(parse_cluster_nodes(text), base or RedisConnectionParams())

    @property
    def nodes_spec(self) -> str:
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.nodes)

    def __repr__(self) -> str:
        return f"ClusterParams({self.redacted()!r})"

    def redacted(self) -> str:
        """The nodes, with TLS and a masked password when set; safe to log."""
        extras = []
        if self.base.ssl:
            extras.append("tls")
        if self.base.password is not None:
            extras.append("password=***")
        return self.nodes_spec + (f" ({', '.join(extras)})" if extras else "")

    def node(self, host: str, port: int) -> RedisConnectionParams:
        """Connection parameters of one node (the pipelined writer opens its own socket)."""
        return dataclasses.replace(self.base, host=host, port=port)

    def first(self) -> RedisConnectionParams:
        return self.node(*self.nodes[0])

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.asyncio.RedisCluster(...)``."""
        kwargs = self.base.redis_kwargs()
        for key in ("db", "host", "port", "unix_socket_path"):
            kwargs.pop(key, None)
        kwargs["startup_nodes"] = [ClusterNode(host, port) for host, port in self.nodes]
        # One shard without a primary must not stop reads of the others (docs/cluster.md).
        kwargs["require_full_coverage"] = False
        return kwargs


def build_cluster(cluster: ClusterParams, retries: int = DEFAULT_RETRIES) -> RedisCluster:
    retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), retries)
    return RedisCluster(**cluster.cluster_kwargs(), decode_responses=False, retry=retry)


class ClusterRedisClient(RedisClient):
    """``RedisClient`` on a Redis Cluster (redis-py ``RedisCluster``), errors translated."""

    def __init__(self, cluster: ClusterParams, *, retries: int = DEFAULT_RETRIES) -> None:
        # Not RedisClient.__init__: that builds a single-server client.
        self.cluster = cluster
        self.params = cluster.first()  # named in error messages; its password is masked
        self.cluster_redis: RedisCluster = build_cluster(cluster, retries)
        # RedisCluster has the same command methods RedisClient calls (each routed to the
        # slot's owner); the overrides below cover the multi-key ones.
        self.redis = cast("redis.asyncio.Redis", self.cluster_redis)
        self._closed = False
        logger.debug("Redis cluster client for %s", cluster.redacted())

    @classmethod
    def from_nodes(cls, text: str, base: RedisConnectionParams | None = None) -> Self:
        return cls(ClusterParams.parse(text, base))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cluster.redacted()!r})"

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of ``keys`` in order: one ``MGET`` per slot, pipelined per node."""
        if not keys:
            return []
        with translate_errors(self.params, f"MGET of {len(keys)} keys (per slot)"):
            values = await self.cluster_redis.mget_nonatomic(list(keys))
        return cast("list[bytes | None]", values)

    async def topology(self, *, refresh: bool = False) -> Topology:
        """Which primary owns each slot, as the cluster says (``CLUSTER SLOTS``).

        ``refresh`` asks again (after ``MOVED``, a failover, a lost node); otherwise the
        map redis-py already holds is used.
        """
        with translate_errors(self.params, "CLUSTER SLOTS"):
            cluster = self.cluster_redis
            await cluster.initialize()
            if refresh:
                await cluster.nodes_manager.initialize()
            owners: list[tuple[str, int] | None] = [None] * SLOTS
            for slot, nodes in cluster.nodes_manager.slots_cache.items():
                if nodes:
                    owners[slot] = (nodes[0].host, int(nodes[0].port))
            return Topology(tuple(owners))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with translate_errors(self.params, "close"):
            await self.cluster_redis.aclose()
