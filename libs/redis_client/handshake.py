"""Opening the pipelined writer's connection: socket, ``AUTH``/``SELECT``, the guard.

Everything a (re)connection does before it may carry a write, in one exchange: the
socket (TCP, TLS or a unix socket), the credentials and database, then a
:class:`ConnectionGuard`'s own setup commands, whose replies it checks. Leader election
is the guard: it names the connection with its epoch and refuses it once a newer epoch
exists (connection fencing, docs/leadership.md).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any, Final, Protocol

import hiredis

from libs.redis_client.exceptions import RedisCommandError, RedisConnectionError
from libs.redis_client.params import RedisConnectionParams

__all__ = ["READ_CHUNK", "ConnectionGuard", "open_connection", "pack_commands"]

# The stream reader's buffer limit and the size of each read, handshake and replies alike.
READ_CHUNK: Final = 1 << 18


def pack_commands(commands: Sequence[Sequence[Any]]) -> bytes:
    """RESP-encode commands (bytes, str, int args) into one buffer."""
    pack = hiredis.pack_command
    return b"".join([pack(tuple(command)) for command in commands])


class ConnectionGuard(Protocol):
    """Setup commands sent on every new connection, and the check of their replies."""

    def commands(self) -> Sequence[tuple[Any, ...]]: ...

    def check(self, replies: Sequence[Any]) -> None:
        """Raise (``RedisFencedError``) to refuse the connection before any write."""

    async def confirm(self) -> None:
        """After ``check``, still before any write: a check made on another connection
        (on a Redis Cluster the stamp lives on one node, docs/leadership.md). Raise to
        refuse."""


async def open_connection(
    params: RedisConnectionParams, guard: ConnectionGuard | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the connection, authenticate, select the database, pass the guard.

    Raises :class:`RedisConnectionError` when Redis cannot be reached,
    :class:`RedisCommandError` when it refuses the setup, or what the guard raises; the
    socket is closed then.
    """
    p = params
    timeout = p.socket_timeout
    try:
        if p.unix_socket_path:
            opened = asyncio.open_unix_connection(p.unix_socket_path, limit=READ_CHUNK)
        else:
            context = ssl.create_default_context(cafile=p.ssl_ca_certs) if p.ssl else None
            opened = asyncio.open_connection(p.host, p.port, ssl=context, limit=READ_CHUNK)
        # asyncio.timeout, not wait_for, which can drop a cancellation (libs/tasks).
        async with asyncio.timeout(timeout):
            reader, writer = await opened
    except (OSError, TimeoutError) as exc:
        raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
    setup: list[tuple[Any, ...]] = []
    if p.password is not None:
        auth = ("AUTH", p.username, p.password) if p.username else ("AUTH", p.password)
        setup.append(auth)
    if p.db:
        setup.append(("SELECT", p.db))
    checked = len(setup)
    if guard is not None:
        setup.extend(guard.commands())
    if setup:
        try:
            async with asyncio.timeout(timeout):
                replies = await _exchange(reader, writer, setup)
            if guard is not None:
                guard.check(replies[checked:])
                await guard.confirm()
        except BaseException:
            writer.close()
            raise
    return reader, writer


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, commands: list[tuple[Any, ...]]
) -> list[Any]:
    parser = hiredis.Reader()
    writer.write(pack_commands(commands))
    replies: list[Any] = []
    try:
        while len(replies) < len(commands):
            data = await reader.read(READ_CHUNK)
            if not data:
                raise RedisConnectionError("Redis closed the connection during setup")
            parser.feed(data)
            while (reply := parser.gets()) is not False:
                replies.append(reply)
    except OSError as exc:
        raise RedisConnectionError(f"Redis connection failed during setup: {exc}") from exc
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            # The reply text names the failed step (e.g. WRONGPASS) but never the secret.
            raise RedisCommandError(f"Redis refused connection setup: {reply}")
    return replies
