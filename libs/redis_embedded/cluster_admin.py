"""Cluster administration on a private cluster: forming it, moving a slot, failing over.

Plain ``CLUSTER`` commands over redis-py's synchronous client, each followed by a poll
with a deadline until every live node agrees (never a fixed sleep). Used by
``EmbeddedRedisCluster`` and by the fault tests (docs/cluster.md, "Faults").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis

from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.params import RedisConnectionParams

__all__ = [
    "SLOTS",
    "add_slots",
    "cluster_ok",
    "command",
    "connect",
    "migrate_slot",
    "node_id",
    "slot_owner_port",
    "wait_until",
]

SLOTS: Final = 16384
_MIGRATE_BATCH: Final = 100


def command(client: redis.Redis, *args: Any) -> Any:
    """One raw command (redis-py leaves ``execute_command`` untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def connect(params: RedisConnectionParams) -> redis.Redis:
    return redis.Redis(**params.redis_kwargs(), decode_responses=True)


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check`` until true; RedisClientError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass  # a node mid-restart or mid-failover: ask again
        if time.monotonic() > deadline:
            raise RedisClientError(f"cluster: {what} not reached within {timeout:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def node_id(client: redis.Redis) -> str:
    return str(command(client, "CLUSTER", "MYID"))


def add_slots(client: redis.Redis, first: int, last: int) -> None:
    command(client, "CLUSTER", "ADDSLOTSRANGE", first, last)


def cluster_ok(client: redis.Redis, nodes: int) -> bool:
    """The node says ``cluster_state:ok`` and knows ``nodes`` nodes."""
    info: dict[str, Any] = client.cluster("INFO")
    return (
        info.get("cluster_state") == "ok"
        and int(info.get("cluster_known_nodes", 0)) == nodes
        and int(info.get("cluster_slots_assigned", 0)) == SLOTS
    )


def slot_owner_port(client: redis.Redis, slot: int) -> int | None:
    """The port of the primary that ``client``'s node believes owns ``slot``."""
    for entry in command(client, "CLUSTER", "SLOTS"):
        start, end, primary = int(entry[0]), int(entry[1]), entry[2]
        if start <= slot <= end:
            return int(primary[1])
    return None


def migrate_slot(
    source: redis.Redis,
    target: redis.Redis,
    slot: int,
    everyone: Sequence[redis.Redis],
    *,
    target_port: int,
    password: str | None = None,
    between_batches: Callable[[], None] | None = None,
) -> int:
    """Move ``slot`` from ``source`` to ``target`` the way redis-cli reshards; keys moved.

    IMPORTING on the target, MIGRATING on the source, then MIGRATE keys in batches
    (``between_batches`` runs after each: a test writes meanwhile), then SETSLOT NODE on
    every node so the new owner is known everywhere.
    """
    source_id, target_id = node_id(source), node_id(target)
    command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    moved = 0
    while True:
        keys = command(source, "CLUSTER", "GETKEYSINSLOT", slot, _MIGRATE_BATCH)
        if not keys:
            break
        auth: list[Any] = ["AUTH", password] if password is not None else []
        command(source, "MIGRATE", "127.0.0.1", target_port, "", 0, 5000, *auth, "KEYS", *keys)
        moved += len(keys)
        if between_batches is not None:
            between_batches()
    # The target first, as redis-cli does: it owns the slot before the source lets go.
    command(target, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
    command(source, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
    for node in everyone:
        if node is not source and node is not target:
            command(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
    return moved
