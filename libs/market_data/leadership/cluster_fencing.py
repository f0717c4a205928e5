"""Fencing on a Redis Cluster: kill older epochs' writers on every primary (docs/leadership.md).

On one Redis the new leader lists and kills the older epochs' connections on that one
server. On a cluster the writers hold one connection per primary (the cluster sink),
so the new leader asks the cluster for its topology again (a failover may have
promoted a replica since the last look) and runs ``CLIENT LIST``/``CLIENT KILL ID`` on
every primary that owns slots, one node at a time on a connection of its own.

Every primary must answer: one that cannot be fenced may still carry an older
epoch's writes, so :func:`fence_cluster` raises and the elector gives the lease back
and tries again later (it never writes unfenced). Replicas are fenced too, but as a
courtesy: writers never write to a replica, and a replica promoted later serves
connections made after its promotion, which are named and checked as any other; one
that does not answer (often a dead former primary) does not stop the leader.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from libs.market_data.leadership.kill import kill_older
from libs.redis_client import RedisClient
from libs.redis_client.cluster import ClusterRedisClient
from libs.redis_client.exceptions import RedisClientError

__all__ = ["ClusterFencing", "fence_cluster"]

logger = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass
class ClusterFencing:
    """What one cluster-wide fencing did: connections killed, nodes fenced, nodes missed."""

    killed: int = 0
    primaries: list[Address] = field(default_factory=list)
    replicas: list[Address] = field(default_factory=list)
    missed_replicas: list[Address] = field(default_factory=list)


async def fence_cluster(client: ClusterRedisClient, namespace: str, epoch: int) -> ClusterFencing:
    """Kill the writer connections of ``namespace`` named with an epoch below ``epoch``
    on every node; raises :class:`RedisClientError` if a primary could not be fenced."""
    topology = await client.topology(refresh=True)
    primaries = topology.primaries()
    if not primaries:
        raise RedisClientError("cannot fence: the cluster names no primary")
    if None in topology.owners:
        # Slots without a primary: their next owner is not known, so not fenced either.
        raise RedisClientError(f"cannot fence: {topology.owners.count(None)} slots have no primary")
    replicas = sorted(
        {(node.host, int(node.port)) for node in client.cluster_redis.get_replicas()}
        - set(primaries)
    )
    done = ClusterFencing()
    for address in primaries:
        done.killed += await _fence_node(client, address, namespace, epoch)
        done.primaries.append(address)
    for address in replicas:
        try:
            done.killed += await _fence_node(client, address, namespace, epoch)
            done.replicas.append(address)
        except RedisClientError as exc:
            logger.info("replica %s:%s not fenced (%s)", *address, exc)
            done.missed_replicas.append(address)
    return done


async def _fence_node(
    client: ClusterRedisClient, address: Address, namespace: str, epoch: int
) -> int:
    # A plain connection to the node: CLIENT LIST and CLIENT KILL are per server, and
    # a connection of our own says exactly which server answered.
    node = RedisClient(params=client.cluster.node(*address), retries=0)
    try:
        return await kill_older(node, namespace, epoch)
    finally:
        await node.close()
