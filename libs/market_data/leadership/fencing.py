"""Connection fencing: a write of an older epoch meets a closed socket (docs/leadership.md).

Every connection that writes prices, events or notices (the sink's pipelined writer)
is named ``md:{namespace}:e{epoch}:{instance}`` and, on every (re)connect and before
its first write, reads the epoch stamp in Redis: a stamp that is not its own (a newer
leader, or a Redis that lost it) refuses the connection and demotes the instance.
A new leader raises the stamp first (:mod:`~libs.market_data.leadership.redis_lease`),
then kills every connection named with an older epoch, and only then writes.

Why that is enough: Redis runs one command at a time. A connection's ``SETNAME`` comes
before its stamp check, and the new leader's stamp comes before its ``CLIENT LIST``. If
the check ran before the new stamp, the name was already set and the list finds it:
killed. If it ran after, it sees the new stamp: refused. A killed connection's unread
input is discarded with it, so the writes a paused leader buffered never run.

On a Redis Cluster (``reader`` given) the stamp lives on the lease's node, not on the
primary a writer connects to: the connection is named in its handshake, and once that
is answered the stamp and the lease are read through the cluster client; the new leader
kills older epochs on every primary (:mod:`.cluster_fencing`, docs/leadership.md).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn

from libs.market_data.keys import KeySpace
from libs.redis_client.exceptions import RedisFencedError

if TYPE_CHECKING:
    from libs.redis_client import RedisClient

__all__ = [
    "INSTANCE_ID_PATTERN",
    "EpochGuard",
    "connection_name",
    "default_instance_id",
    "name_epoch",
    "older_connections",
    "stamp",
]

NAME_PREFIX: Final = "md"
# What CLIENT SETNAME takes (no spaces) and a lease value can split on.
INSTANCE_ID_PATTERN: Final = r"^[A-Za-z0-9_.@-]{1,64}$"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.@-]")


def default_instance_id() -> str:
    """``{host}-{pid}``: unique among instances sharing a Redis, readable in logs."""
    host = _UNSAFE.sub("-", socket.gethostname())[:48] or "host"
    return f"{host}-{os.getpid()}"


def connection_name(namespace: str, epoch: int, instance: str) -> str:
    """The name of a writer connection of ``epoch`` (``md:paper:e7:host-123``)."""
    return f"{NAME_PREFIX}:{namespace}:e{epoch}:{instance}"


def name_epoch(name: str, namespace: str) -> int | None:
    """The epoch in a writer connection's name of this namespace, else None."""
    head = f"{NAME_PREFIX}:{namespace}:e"
    if not name.startswith(head):
        return None
    digits, _, _ = name[len(head) :].partition(":")
    return int(digits) if digits.isdigit() else None


def older_connections(
    clients: Iterable[Mapping[str, Any]], namespace: str, epoch: int
) -> list[int]:
    """Ids of the writer connections of this namespace named with an epoch below ``epoch``
    (``clients``: ``CLIENT LIST`` as redis-py parses it, one mapping per connection)."""
    ids: list[int] = []
    for client in clients:
        name = client.get("name") or ""
        seen = name_epoch(str(name), namespace)
        if seen is not None and seen < epoch:
            ids.append(int(client["id"]))
    return ids


def stamp(epoch: int, token: str) -> str:
    """The epoch stamp a leader writes at acquisition: its epoch and its lease token."""
    return f"{epoch}:{token}"


class EpochGuard:
    """The writer's :class:`~libs.redis_client.writer.ConnectionGuard`: names each new
    connection with the epoch and refuses it unless Redis holds this leader's stamp.

    ``epoch``/``token`` are set while leading and cleared on stepping down, so a writer
    that reconnects after that is refused too; ``on_fenced`` tells the elector.
    ``reader`` (a Redis Cluster's client): the check reads the stamp, and the lease, there
    once the name is set (:meth:`confirm`) instead of on the writer's own connection.
    """

    def __init__(
        self,
        keys: KeySpace,
        instance: str,
        on_fenced: Callable[[], None] | None = None,
        *,
        reader: RedisClient | None = None,
    ) -> None:
        self._keys = keys
        self._instance = instance
        self._on_fenced = on_fenced
        self._reader = reader
        self.epoch: int | None = None
        self.token: str | None = None
        self.refusals = 0

    def lead(self, epoch: int, token: str) -> None:
        self.epoch, self.token = epoch, token

    def step_down(self) -> None:
        self.epoch = self.token = None

    def commands(self) -> Sequence[tuple[Any, ...]]:
        epoch = -1 if self.epoch is None else self.epoch
        name = connection_name(self._keys.namespace, epoch, self._instance)
        # The name first: see the module docstring for why the order matters.
        if self._reader is not None:
            return [("CLIENT", "SETNAME", name)]  # the stamp is read in confirm()
        return [("CLIENT", "SETNAME", name), ("GET", self._keys.epoch_key)]

    def check(self, replies: Sequence[Any]) -> None:
        if self._reader is not None:
            return  # only the name's OK: the handshake raised on an error reply
        found = replies[-1] if replies else None
        if self.epoch is not None and self.token is not None:
            mine = stamp(self.epoch, self.token).encode()
            if found == mine:
                return
        self._refuse(found)

    async def confirm(self) -> None:
        """On a cluster: the name is set; now the stamp must be ours, and so must the
        lease. The lease too because a promoted replica of the lease's node may have
        missed the newest stamp (asynchronous replication) yet never holds a lease of
        ours that ran out (docs/leadership.md, "On a Redis Cluster")."""
        reader = self._reader
        if reader is None:
            return
        found, lease = await reader.mget([self._keys.epoch_key, self._keys.leader_key])
        if self.epoch is not None and self.token is not None:
            mine = stamp(self.epoch, self.token).encode()
            held = f"{self.epoch} {self._instance} {self.token}".encode()
            if found == mine and lease == held:
                return
            if found == mine:
                found = b"%s (lease %s)" % (found, lease or b"gone")
        self._refuse(found)

    def _refuse(self, found: Any) -> NoReturn:
        self.refusals += 1
        if self._on_fenced is not None:
            self._on_fenced()
        shown = found.decode(errors="replace") if isinstance(found, bytes) else found
        raise RedisFencedError(
            f"writer refused: epoch stamp in Redis is {shown!r}, not this leader's "
            f"(epoch {self.epoch})"
        )
