"""A pub/sub connection read in bulk: one socket read and one hiredis feed per batch.

redis-py's ``PubSub.get_message`` costs tens of microseconds of CPU per message (a
retry wrapper, a timeout context and a parser call each): 42 µs per message measured
on the 2-core bench machine, which made the live stream's Redis reader the largest
share of the service's CPU in the fan-out bench. Here a read takes whatever the socket
holds, hiredis splits it into messages in C, and the messages wait in a queue: a
timeout is armed only when the queue is empty.

Messages have redis-py's shape (``type``, ``pattern``, ``channel``, ``data``), so
:class:`~libs.market_data.consumers.subscriber.PriceSubscriber` reads this link and the
cluster's alike. The connection is opened by the pipelined writer's handshake (TCP, TLS
or a unix socket, ``AUTH``, ``SELECT``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

import hiredis

from libs.redis_client import RedisCommandError, RedisConnectionError, RedisConnectionParams
from libs.redis_client.handshake import READ_CHUNK, open_connection, pack_commands

__all__ = ["BulkPubSub"]

_CONFIRMATIONS: Final = frozenset({"subscribe", "psubscribe", "ssubscribe"})
_CLOSE_TIMEOUT: Final = 2.0


class BulkPubSub:
    """Subscribes once, then hands out messages one by one from bulk reads."""

    def __init__(self, params: RedisConnectionParams) -> None:
        self._params = params
        self._parser = hiredis.Reader()
        self._pending: deque[dict[str, Any]] = deque()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(
        self,
        channels: Sequence[str],
        patterns: Sequence[str] = (),
        shards: Sequence[Sequence[str]] = (),
    ) -> None:
        """Connect, subscribe, and return once Redis confirmed every subscription: from
        then on every message published on them is in this connection.

        ``shards``: sharded channels (``SSUBSCRIBE``, a Redis Cluster), one group per
        slot, as Redis refuses a cross-slot ``SSUBSCRIBE``.
        """
        try:
            self._reader, self._writer = await open_connection(self._params, None)
        except RedisCommandError as exc:
            # Refused credentials: a connection that failed, as redis-py reports it, so
            # the subscriber's retries and their limit (SubscriberError) apply as before.
            raise RedisConnectionError(f"Redis refused the pub/sub connection: {exc}") from exc
        commands: list[tuple[str, ...]] = []
        if channels:
            commands.append(("SUBSCRIBE", *channels))
        if patterns:
            commands.append(("PSUBSCRIBE", *patterns))
        commands.extend(("SSUBSCRIBE", *group) for group in shards if group)
        self._writer.write(pack_commands(commands))
        wanted = len(channels) + len(patterns) + sum(len(group) for group in shards)
        confirmed = 0
        try:
            async with asyncio.timeout(self._params.socket_timeout):
                # Messages of a channel confirmed first may come in between: they stay
                # queued with the confirmations (which the subscriber skips).
                while confirmed < wanted:
                    data = await self._reader.read(READ_CHUNK)
                    if not data:
                        raise RedisConnectionError("Redis closed the pub/sub connection")
                    confirmed += self._take(data)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"pub/sub subscription not confirmed: {exc}") from exc

    async def get_message(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message (confirmations included); None after ``timeout`` seconds."""
        if self._pending:
            return self._pending.popleft()
        reader = self._reader
        if reader is None:
            raise RedisConnectionError("the pub/sub connection is closed")
        try:
            async with asyncio.timeout(timeout):
                data = await reader.read(READ_CHUNK)
        except TimeoutError:
            return None
        except OSError as exc:
            raise RedisConnectionError(f"pub/sub connection lost: {exc}") from exc
        if not data:
            raise RedisConnectionError("Redis closed the pub/sub connection")
        self._take(data)
        return self._pending.popleft() if self._pending else None

    def _take(self, data: bytes) -> int:
        """Queue the messages ``data`` completes; return how many confirm a subscription."""
        parser = self._parser
        confirmations = 0
        try:
            parser.feed(data)
            while (reply := parser.gets()) is not False:
                message = _message(reply)
                confirmations += message["type"] in _CONFIRMATIONS
                self._pending.append(message)
        except hiredis.ProtocolError as exc:
            raise RedisConnectionError(f"pub/sub stream unreadable: {exc}") from exc
        return confirmations

    async def aclose(self) -> None:
        """Close the socket (bounded: a server that went away must not hold it)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await writer.wait_closed()


def _message(reply: Any) -> dict[str, Any]:
    """A RESP push as redis-py's ``get_message`` shapes it."""
    if isinstance(reply, hiredis.ReplyError):
        # On a subscribed connection only a refused command answers with an error.
        raise RedisConnectionError(f"Redis refused the subscription: {reply}")
    if not isinstance(reply, list) or len(reply) < 3:
        raise RedisConnectionError(f"unexpected reply on the pub/sub connection: {reply!r}")
    kind = reply[0].decode()
    if kind == "pmessage" and len(reply) == 4:
        return {"type": kind, "pattern": reply[1], "channel": reply[2], "data": reply[3]}
    return {"type": kind, "pattern": None, "channel": reply[1], "data": reply[2]}
