"""A pipelined Redis writer: many command batches in flight on one connection.

redis-py's pipeline waits for each batch's replies before the next can go, and costs
tens of microseconds per command in Python. Here commands are packed by hiredis (C),
written without waiting, and a reader task parses replies with hiredis and retires
batches in order, so the client and Redis work at the same time. This is the only
hand-written protocol code of the project; it relies on one Redis guarantee: replies
come back in the order the commands were sent.

A batch carries a caller-chosen *token*. When a batch's last reply arrives, its token
goes to ``on_reply`` with the positions of the commands Redis refused (``-OOM``,
``-READONLY``, ...; normally none), so the caller can act on each command's fate: the
price sink sends an event only for a price whose cache write landed. When the
connection is lost, the tokens of the batches whose replies never came are handed to
``on_lost`` in send order, so the caller can rewrite what may not have landed.

A :class:`~libs.redis_client.handshake.ConnectionGuard`, when given, adds its commands
to every (re)connection's setup and checks their replies before the connection carries a
write (:mod:`libs.redis_client.handshake`: connection fencing, docs/leadership.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from libs.redis_client.exceptions import RedisConnectionError
from libs.redis_client.handshake import (
    READ_CHUNK,
    ConnectionGuard,
    open_connection,
    pack_commands,
)
from libs.redis_client.params import RedisConnectionParams
from libs.redis_client.replies import RedisProtocolError, ReplyCounter
from libs.tasks import cancel_and_wait
from libs.telemetry import ROUND_TRIP_BUCKETS, Histogram

# ConnectionGuard and pack_commands are re-exported: the sinks and tools import them here.
__all__ = ["ConnectionGuard", "PipelinedWriter", "pack_commands"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_WRITE_BUFFER_HIGH = 8 << 20


class PipelinedWriter(Generic[T]):
    """Write command batches without waiting for their replies; retire them in order."""

    def __init__(
        self,
        params: RedisConnectionParams,
        *,
        max_in_flight: int = 32,
        on_lost: Callable[[list[T], BaseException], None] | None = None,
        on_reply: Callable[[T, Sequence[tuple[int, str]]], None] | None = None,
        guard: ConnectionGuard | None = None,
    ) -> None:
        self._params = params
        self._guard = guard
        self._max_in_flight = max_in_flight
        self._on_lost = on_lost
        self._on_reply = on_reply
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reply_task: asyncio.Task[None] | None = None
        # [replies still expected, token, monotonic send time, replies in all, refused
        # positions or None] per batch, oldest first
        self._in_flight: deque[list[Any]] = deque()
        self._held: list[bytes] | None = None
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.batches_done = 0
        self.reply_errors = 0
        self.last_reply_error: str | None = None
        self.last_round_trip: float | None = None
        # Once per batch (one received frame), never per command: metrics read it at scrape.
        self.round_trip_seconds = Histogram(ROUND_TRIP_BUCKETS)

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def unanswered_for(self, now: float | None = None) -> float:
        """Seconds the oldest batch in flight has waited for its replies (0: none)."""
        if not self._in_flight:
            return 0.0
        sent: float = self._in_flight[0][2]
        return max(0.0, (time.monotonic() if now is None else now) - sent)

    def writable(self) -> bool:
        """True when a batch can be sent now without waiting (buffer and in-flight room)."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        # drain() pauses above the high-water mark; below it a write never waits.
        return self._room.is_set() and (
            writer.transport.get_write_buffer_size() <= _WRITE_BUFFER_HIGH
        )

    async def connect(self) -> None:
        """Open the connection, authenticate and select the database (and the guard's setup)."""
        reader, writer = await open_connection(self._params, self._guard)
        # One frame's batch is ~80 KB: with asyncio's default 64 KB high-water mark every
        # write would pause us in drain() until Redis caught up, a stall per frame.
        # The in-flight limit already bounds what can queue up.
        writer.transport.set_write_buffer_limits(high=_WRITE_BUFFER_HIGH)
        self._reader, self._writer = reader, writer
        self._reply_task = asyncio.create_task(self._read_replies(reader), name="redis-replies")

    def send(self, payload: bytes, replies: int, token: T) -> None:
        """Write one packed batch expecting ``replies`` replies; never waits."""
        writer = self._writer
        if writer is None or writer.is_closing():
            raise RedisConnectionError("Redis writer is not connected")
        held = self._held
        if held is None:
            writer.write(payload)
        else:
            held.append(payload)  # written with the others once this read is handled
        self._in_flight.append([replies, token, time.monotonic(), replies, None])
        self._idle.clear()
        if len(self._in_flight) >= self._max_in_flight:
            self._room.clear()

    async def wait_writable(self) -> None:
        """Wait until the socket buffer has drained and fewer batches are in flight."""
        writer = self._writer
        if writer is None:
            return
        try:
            await writer.drain()
        except (OSError, RuntimeError) as exc:
            raise RedisConnectionError(f"Redis connection lost: {exc}") from exc
        if not self._room.is_set():
            await self._room.wait()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every batch sent so far has its replies; False on timeout."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see libs/tasks
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        counter = ReplyCounter()
        in_flight = self._in_flight
        on_reply = self._on_reply
        error: BaseException = RedisConnectionError("Redis closed the connection")
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                replies = counter.feed(data)
                errors = counter.error_lines
                if counter.errors != self.reply_errors:
                    self.reply_errors = counter.errors
                    self.last_reply_error = counter.last_error
                position = 0  # of the next reply among those this read completed
                # Batches sent by on_reply while this read is handled (the price sink's
                # events) go out as one write: one syscall per read, not one per batch.
                held: list[bytes] = []
                self._held = held
                while replies:
                    head = in_flight[0]
                    taken = min(replies, head[0])
                    if errors:
                        self._attribute(head, errors, position, taken)
                    head[0] -= taken
                    replies -= taken
                    position += taken
                    if head[0] == 0:
                        in_flight.popleft()
                        self.batches_done += 1
                        rtt = time.monotonic() - head[2]
                        self.last_round_trip = rtt
                        self.round_trip_seconds.observe(rtt)
                        if on_reply is not None:
                            try:
                                on_reply(head[1], head[4] or ())
                            except Exception:  # the caller's bug must not kill the reader
                                logger.exception("reply handler failed")
                self._held = None
                if held:
                    self._write_held(held)
                if len(in_flight) < self._max_in_flight:
                    self._room.set()
                if not in_flight:
                    self._idle.set()
        except (OSError, RedisProtocolError) as exc:
            error = RedisConnectionError(f"Redis connection lost: {exc}")
        except asyncio.CancelledError:
            error = RedisConnectionError("Redis writer closed")
            raise
        finally:
            self._held = None
            self._lost(error)

    def _write_held(self, held: list[bytes]) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(held[0] if len(held) == 1 else b"".join(held))

    @staticmethod
    def _attribute(
        head: list[Any], errors: list[tuple[int, str]], position: int, taken: int
    ) -> None:
        """Record which of ``head``'s commands were refused, by position in its batch."""
        done = head[3] - head[0]  # replies of this batch seen before this read
        for index, text in errors:
            if position <= index < position + taken:
                if head[4] is None:
                    head[4] = []
                head[4].append((done + index - position, text))

    def _lost(self, error: BaseException) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.transport.abort()  # given up: nothing buffered is worth waiting for
        lost = [entry[1] for entry in self._in_flight]
        self._in_flight.clear()
        self._room.set()
        self._idle.set()
        if lost and self._on_lost is not None:
            self._on_lost(lost, error)

    async def close(self) -> None:
        """Close the connection; batches without replies are reported to ``on_lost``."""
        task, self._reply_task = self._reply_task, None
        writer = self._writer
        if writer is not None:
            # Not close(): that waits for the buffer to drain, and a frozen Redis never
            # reads it. What is unsent has no reply either way and goes to ``on_lost``.
            writer.transport.abort()
        await cancel_and_wait(task)
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
