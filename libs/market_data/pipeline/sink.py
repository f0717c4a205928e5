"""The Redis side of the pipeline: cache, then publish, one write per batch.

For every accepted quote ``SET price:{SYM} <PriceData JSON> EX ttl`` goes out first, and
``PUBLISH price.updated.{SYM} <PriceUpdateEvent JSON>`` only once Redis has answered that
``SET`` with success: an event never announces a price the cache does not hold, even when
Redis refuses writes while keeping the connection open (``-OOM``, ``-READONLY``, ...).
A batch (one received frame) is one write on a pipelined connection, several batches in
flight; its events are one more write when its replies come back.

When writes do not land (Redis down, refusing, or not answering within
``write_timeout``) the sink keeps only the newest update of each symbol (memory bounded by
the symbol count, never a queue of everything), never makes the reader wait longer than
``write_timeout``, rewrites those updates until they land, and then announces
``redis.recovered`` on ``market_data.status`` with the symbols it rewrote (the way back:
:mod:`~libs.market_data.pipeline.recovery`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from libs.market_data import defaults
from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.market_data.pipeline.book import UpdateBook
from libs.market_data.pipeline.condition import SinkCondition, SinkState
from libs.market_data.pipeline.notices import Notices
from libs.market_data.pipeline.packing import Batch, FramePacker
from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.pipeline.recovery import SinkRecovery
from libs.market_data.pipeline.stats import SinkStats
from libs.redis_client import RedisConnectionParams
from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.writer import ConnectionGuard, PipelinedWriter
from libs.telemetry import Histogram

__all__ = ["RedisPriceSink", "SinkState"]

logger = logging.getLogger(__name__)


class RedisPriceSink:
    """Writes accepted quotes to Redis; survives Redis faults without unbounded memory."""

    def __init__(
        self,
        params: RedisConnectionParams,
        ttl: int,
        *,
        max_in_flight: int = 32,
        write_timeout: float = defaults.REDIS_WRITE_TIMEOUT,
        keys: KeySpace = DEFAULT_KEYS,
        guard: ConnectionGuard | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be a positive number of seconds")
        if write_timeout <= 0:
            raise ValueError("write_timeout must be a positive number of seconds")
        self._params = params
        self._frames = FramePacker(ttl, keys)
        self._writer: PipelinedWriter[Batch] = PipelinedWriter(
            params,
            max_in_flight=max_in_flight,
            on_lost=self._on_lost,
            on_reply=self._on_reply,
            guard=guard,  # leader election's connection fencing (docs/leadership.md)
        )
        self._book = UpdateBook()
        self._condition = SinkCondition(write_timeout)
        self._notices = Notices(self._writer, keys.status_channel)
        self._recovery = SinkRecovery(
            self._writer,
            self._condition,
            self._book,
            self._notices,
            send=self._send,
            publish=self.publish_status,
        )
        # Told of every notice after it is queued (the gap fill starts on reconnects and
        # Redis recoveries: docs/architecture.md, "Gap fill"); must not raise.
        self.notice_listener: Callable[[str, Mapping[str, Any]], None] | None = None
        # Notices waiting for the last SET batch sent before them to be answered and its
        # events sent (publish_status_after_writes); keyed by id() while it is in flight.
        self._last_set: Batch | None = None
        self._after: dict[int, list[tuple[str, Mapping[str, Any]]]] = {}
        self.quotes_written = 0
        self.quotes_deferred = 0
        self.quotes_refused = 0

    # -- state ----------------------------------------------------------------------

    @property
    def state(self) -> SinkState:
        return self._condition.state

    @property
    def last_error(self) -> str | None:
        return self._condition.last_error

    @property
    def connected(self) -> bool:
        return self._writer.connected

    @property
    def pending_symbols(self) -> int:
        return len(self._book.pending)

    @property
    def write_timeout(self) -> float:
        return self._condition.write_timeout

    @property
    def round_trip_seconds(self) -> Histogram:
        """Redis round trip per written batch, for the metrics endpoint."""
        return self._writer.round_trip_seconds

    def problem(self) -> str | None:
        """Why writes are not landing right now, from state already held; None if they are."""
        return self._condition.problem(self._writer.unanswered_for())

    def snapshot(self) -> SinkStats:
        writer = self._writer
        rtt = writer.last_round_trip
        return SinkStats(
            redis_connected=writer.connected,
            redis_state=self._condition.state.value,
            quotes_written=self.quotes_written,
            quotes_deferred=self.quotes_deferred,
            quotes_refused=self.quotes_refused,
            pending_symbols=len(self._book.pending),
            batches_in_flight=writer.in_flight,
            round_trips=writer.batches_done,
            last_round_trip_ms=None if rtt is None else rtt * 1000,
            reply_errors=writer.reply_errors,
            redis_outages=self._condition.outages,
            notices_published=self._notices.published,
            redis_last_error=self._condition.last_error,
        )

    def stats(self) -> dict[str, Any]:
        """:meth:`snapshot` as a dict, for ``get_connection_stats()``."""
        return asdict(self.snapshot())

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; if Redis is not there yet, keep trying in the background."""
        try:
            await self._writer.connect()
        except RedisClientError as exc:
            self._recovery.lost(exc)
            return
        self._condition.enter(SinkState.UP)

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything written so far is acknowledged by Redis."""
        return await self._writer.flush(timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is pending and in flight (bounded by ``timeout``), then close."""
        await self._recovery.stop()
        self._condition.enter(SinkState.CLOSED)
        if self._writer.connected:
            pending = self._book.take_pending()
            if pending:
                self._send(pending)
            await self._writer.flush(timeout)
        await self._writer.close()

    # -- writing ----------------------------------------------------------------------

    async def write(self, updates: Sequence[PriceUpdate]) -> None:
        """Cache and publish ``updates`` in order; waits at most ``write_timeout``."""
        if not updates:
            return
        if not self._condition.accepting:
            self.quotes_deferred += self._book.hold(updates)
            return
        self._send(updates)
        writer = self._writer
        if writer.writable():
            return
        try:
            async with asyncio.timeout(self._condition.write_timeout):
                await writer.wait_writable()
        except TimeoutError:
            # Redis holds the connection but does not answer: stop feeding it and let
            # the reader go on; the newest price per symbol waits in the book.
            self._recovery.unresponsive()
        except RedisClientError as exc:
            self._recovery.lost(exc)

    def _send(self, updates: Sequence[PriceUpdate]) -> None:
        sets, events, written = self._frames.pack(updates, self._book.latest)
        pending = self._book.pending
        if pending:  # these newer updates supersede held ones
            for update in written:
                pending.pop(update[0], None)
        batch = Batch(Batch.SET, updates, events, written)
        try:
            self._writer.send(sets, len(written), batch)
        except RedisClientError as exc:
            self._book.refused(updates)
            self.quotes_deferred += len(updates)
            self._recovery.lost(exc)
            return
        self.quotes_written += len(updates)
        self._last_set = batch

    def _on_reply(self, batch: Batch, refused: Sequence[tuple[int, str]]) -> None:
        """A batch's replies are all in: publish the events of the writes that landed,
        then the notices that waited for them."""
        if batch.kind != Batch.SET:
            return
        self._on_set_reply(batch, refused)
        self._release_after(batch)

    def _release_after(self, batch: Batch) -> None:
        if batch is self._last_set:
            self._last_set = None
        for event, details in self._after.pop(id(batch), ()):
            self.publish_status(event, details)  # held if writes do not land now

    def _on_set_reply(self, batch: Batch, refused: Sequence[tuple[int, str]]) -> None:
        updates = batch.updates
        if not refused:
            self._writer.send(batch.events, len(updates), Batch(Batch.PUBLISH, updates))
            if self._condition.episode is not None and not self._book.pending:
                self._recovery.recovered()
            return
        # A refused SET stands for every update of its topic in the batch: none of their
        # events may go out (the cache does not hold the newest of them).
        written = batch.written
        failed = {written[index][0] for index, _ in refused}
        landed = [u for u in updates if u[0] not in failed]
        if landed:
            events = self._frames.events(landed)
            self._writer.send(events, len(landed), Batch(Batch.PUBLISH, landed))
        self._book.refused(written[index] for index, _ in refused)
        self.quotes_refused += len(refused)
        self._recovery.refused(refused[-1][1])

    def resend_latest(self) -> int:
        """Rewrite every symbol's newest price (the cache lost its data); returns how many."""
        count = self._book.resend_latest()
        if count and self._condition.state is SinkState.UP and self._writer.connected:
            self._send(self._book.take_pending())
        return count

    def forget(self, topics: Iterable[str]) -> None:
        """Topics no longer subscribed: never rewrite their records."""
        self._book.forget(topics)

    def forget_all(self) -> None:
        """A new epoch begins: never rewrite a record of the one before (docs/leadership.md)."""
        self._book.forget([*self._book.latest, *self._book.pending])

    # -- notices ----------------------------------------------------------------------

    def publish_status(self, event: str, details: Mapping[str, Any]) -> None:
        """Publish a notice on ``market_data.status``, in order with the price writes."""
        self._notices.publish(event, details, now=self._condition.accepting)
        if self.notice_listener is not None:
            self.notice_listener(event, details)

    def publish_status_after_writes(self, event: str, details: Mapping[str, Any]) -> None:
        """Publish a notice once the prices written so far are cached and their events
        sent, so it follows those events on pub/sub too (the gap fill's ``gap.filled``)."""
        batch = self._last_set
        if batch is None:
            self.publish_status(event, details)
        else:
            self._after.setdefault(id(batch), []).append((event, details))

    # -- faults -----------------------------------------------------------------------

    def _on_lost(self, batches: list[Batch], error: BaseException) -> None:
        # Called when the connection drops, oldest batch first: an update whose write or
        # event may not have gone out is rewritten if it is still its symbol's newest.
        for batch in batches:
            if batch.kind == Batch.NOTICE:
                if batch.events:
                    self._notices.hold(batch.events)
            else:
                self._book.refused(batch.updates)
        self._recovery.lost(error)
        for batch in batches:
            self._release_after(batch)
        self._last_set = None
