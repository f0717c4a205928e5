"""Killing older epochs' writer connections on one Redis server (docs/leadership.md).

``CLIENT LIST`` names every connection; those of this namespace named with an epoch
below the new leader's are killed by id (``CLIENT KILL ID``), their unread input
discarded with them. Run by a new leader after raising the stamp, before any write:
on one Redis by :meth:`~.redis_lease.RedisLease.fence_older`, on a cluster on each
node by :mod:`.cluster_fencing`.
"""

from __future__ import annotations

from typing import Any, cast

from libs.market_data.leadership.fencing import older_connections
from libs.redis_client import RedisClient
from libs.redis_client.client import translate_errors

__all__ = ["kill_older"]


async def kill_older(client: RedisClient, namespace: str, epoch: int) -> int:
    """On one server: kill the writer connections of ``namespace`` named with an epoch
    below ``epoch`` (``CLIENT LIST``, then ``CLIENT KILL ID``); returns how many."""
    redis = client.redis
    with translate_errors(client.params, "CLIENT LIST"):
        clients = await redis.client_list(_type="normal")
    ids = older_connections(cast("list[dict[str, Any]]", clients), namespace, epoch)
    if not ids:
        return 0
    with translate_errors(client.params, "CLIENT KILL"):
        async with redis.pipeline(transaction=False) as pipe:
            for client_id in ids:
                pipe.client_kill_filter(_id=str(client_id))
            # A connection that closed meanwhile answers "No such client": fine.
            await pipe.execute(raise_on_error=False)
    return len(ids)
