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
``redis.recovered`` on ``market_data.status`` with the symbols it rewrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec

from libs.market_data.pipeline.book import Episode, SinkState, UpdateBook
from libs.market_data.pipeline.processor import PriceUpdate
from libs.redis_client import RedisConnectionParams
from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.resp import SetPublishPacker
from libs.redis_client.writer import PipelinedWriter, pack_commands
from libs.telemetry import Histogram, now_rfc3339

__all__ = [
    "PRICE_CHANNEL_PREFIX",
    "PRICE_KEY_PREFIX",
    "STATUS_CHANNEL",
    "RedisPriceSink",
    "SinkState",
]

logger = logging.getLogger(__name__)

PRICE_KEY_PREFIX: Final = "price:"
PRICE_CHANNEL_PREFIX: Final = "price.updated."
# Gap notices for consumers: after one, re-read the cache rather than trust the events.
STATUS_CHANNEL: Final = "market_data.status"
_MAX_HELD_NOTICES: Final = 32
_NAME_CACHE_LIMIT: Final = 100_000
_RETRY_DELAYS: Final = (0.05, 0.1, 0.2, 0.5)  # then every 0.5 s: back within a second

_status_encoder: Final = msgspec.json.Encoder()


class _Batch:
    """What one write to Redis carried, handed back with its replies."""

    __slots__ = ("events", "kind", "updates")

    SET: Final = 0  # the cache writes of a batch of updates
    PUBLISH: Final = 1  # their events, sent once the writes landed
    NOTICE: Final = 2  # a status notice or the heartbeat

    def __init__(self, kind: int, updates: Sequence[PriceUpdate], events: bytes = b"") -> None:
        self.kind = kind
        self.updates = updates
        self.events = events  # PUBLISH commands for a SET batch; a NOTICE's own payload


class RedisPriceSink:
    """Writes accepted quotes to Redis; survives Redis faults without unbounded memory."""

    def __init__(
        self,
        params: RedisConnectionParams,
        ttl: int,
        *,
        max_in_flight: int = 32,
        write_timeout: float = 1.0,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be a positive number of seconds")
        if write_timeout <= 0:
            raise ValueError("write_timeout must be a positive number of seconds")
        self._params = params
        self._packer = SetPublishPacker(ttl)
        self._write_timeout = write_timeout
        self._writer: PipelinedWriter[_Batch] = PipelinedWriter(
            params, max_in_flight=max_in_flight, on_lost=self._on_lost, on_reply=self._on_reply
        )
        self._names: dict[str, tuple[bytes, bytes]] = {}
        self._book = UpdateBook()
        self._state = SinkState.STARTING
        self._episode: Episode | None = None
        self._task: asyncio.Task[None] | None = None  # retry refused or wait for replies
        self._reconnect_task: asyncio.Task[None] | None = None
        self._held_notices: deque[bytes] = deque(maxlen=_MAX_HELD_NOTICES)
        self._logged_errors: set[str] = set()
        self.notices_published = 0
        self.quotes_written = 0
        self.quotes_deferred = 0
        self.quotes_refused = 0
        self.outages = 0
        self.last_error: str | None = None

    # -- state ----------------------------------------------------------------------

    @property
    def state(self) -> SinkState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._writer.connected

    @property
    def pending_symbols(self) -> int:
        return len(self._book.pending)

    @property
    def write_timeout(self) -> float:
        return self._write_timeout

    @property
    def round_trip_seconds(self) -> Histogram:
        """Redis round trip per written batch, for the metrics endpoint."""
        return self._writer.round_trip_seconds

    def problem(self) -> str | None:
        """Why writes are not landing right now, from state already held; None if they are."""
        state = self._state
        if state is SinkState.UP or state is SinkState.REFUSED:
            waited = self._writer.unanswered_for()
            if waited > self._write_timeout:
                return f"Redis not answering for {waited:.1f}s"
        if state is SinkState.UP:
            return None
        if state is SinkState.REFUSED:
            return f"Redis refuses writes: {self.last_error}"
        if state is SinkState.UNRESPONSIVE:
            return f"Redis not answering within {self._write_timeout:g}s; newest prices held"
        return f"Redis unavailable: {self.last_error}"

    def stats(self) -> dict[str, Any]:
        writer = self._writer
        return {
            "redis_connected": writer.connected,
            "redis_state": self._state.value,
            "quotes_written": self.quotes_written,
            "quotes_deferred": self.quotes_deferred,
            "quotes_refused": self.quotes_refused,
            "pending_symbols": len(self._book.pending),
            "batches_in_flight": writer.in_flight,
            "round_trips": writer.batches_done,
            "last_round_trip_ms": (
                None if writer.last_round_trip is None else writer.last_round_trip * 1000
            ),
            "reply_errors": writer.reply_errors,
            "redis_outages": self.outages,
            "notices_published": self.notices_published,
            "redis_last_error": self.last_error,
        }

    def _set_state(self, state: SinkState, reason: str | None = None) -> None:
        """The one place the state changes; a fault opens an episode, UP closes it."""
        previous = self._state
        if state is previous:
            return
        self._state = state
        if state in (SinkState.REFUSED, SinkState.UNRESPONSIVE, SinkState.DOWN):
            if self._episode is None:
                self._episode = Episode(cause=state)
                self.outages += 1
            if reason is not None:
                self.last_error = reason
            key = f"{state}: {reason}"
            if key not in self._logged_errors:  # once per distinct error, not per batch
                self._logged_errors.add(key)
                logger.warning("Redis %s (%s); keeping the newest price per symbol", state, reason)
        else:
            logger.info("Redis sink %s -> %s", previous, state)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; if Redis is not there yet, keep trying in the background."""
        try:
            await self._writer.connect()
        except RedisClientError as exc:
            self._connection_lost(exc)
            return
        self._set_state(SinkState.UP)

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything written so far is acknowledged by Redis."""
        return await self._writer.flush(timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is pending and in flight (bounded by ``timeout``), then close."""
        self._cancel_task()
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state(SinkState.CLOSED)
        if self._writer.connected:
            pending = self._book.take_pending()
            if pending:
                self._send(pending)
            await self._writer.flush(timeout)
        await self._writer.close()

    def _spawn(self, job: Any) -> None:
        self._cancel_task()
        self._task = asyncio.create_task(job, name="redis-sink-recovery")

    def _cancel_task(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # -- writing ----------------------------------------------------------------------

    async def write(self, updates: Sequence[PriceUpdate]) -> None:
        """Cache and publish ``updates`` in order; waits at most ``write_timeout``."""
        if not updates:
            return
        state = self._state
        if state is not SinkState.UP and state is not SinkState.REFUSED:
            self.quotes_deferred += self._book.hold(updates)
            return
        self._send(updates)
        writer = self._writer
        if writer.writable():
            return
        try:
            async with asyncio.timeout(self._write_timeout):
                await writer.wait_writable()
        except TimeoutError:
            # Redis holds the connection but does not answer: stop feeding it and let
            # the reader go on; the newest price per symbol waits in the book.
            self._set_state(SinkState.UNRESPONSIVE, f"no reply within {self._write_timeout:g}s")
            self._spawn(self._await_replies())
        except RedisClientError as exc:
            self._connection_lost(exc)

    def _send(self, updates: Sequence[PriceUpdate]) -> None:
        names = self._names
        latest = self._book.latest
        # The packer's formats, inlined: two method calls per quote cost more than the
        # formatting itself here (libs/redis_client/resp.py holds them to hiredis's bytes).
        ex = self._packer.set_suffix
        sets: list[bytes] = []
        events: list[bytes] = []
        set_append = sets.append
        event_append = events.append
        for update in updates:
            symbol, price_json, event_json = update
            heads = names.get(symbol)
            if heads is None:
                heads = self._heads(symbol)
            set_append(b"%s$%d\r\n%s%s" % (heads[0], len(price_json), price_json, ex))
            event_append(b"%s$%d\r\n%s\r\n" % (heads[1], len(event_json), event_json))
            latest[symbol] = update
        pending = self._book.pending
        if pending:  # these newer updates supersede held ones
            for update in updates:
                pending.pop(update[0], None)
        batch = _Batch(_Batch.SET, updates, b"".join(events))
        try:
            self._writer.send(b"".join(sets), len(updates), batch)
        except RedisClientError as exc:
            self._book.refused(updates)
            self.quotes_deferred += len(updates)
            self._connection_lost(exc)
            return
        self.quotes_written += len(updates)

    def _heads(self, symbol: str) -> tuple[bytes, bytes]:
        if len(self._names) >= _NAME_CACHE_LIMIT:
            self._names.clear()
        heads = self._packer.heads(
            (PRICE_KEY_PREFIX + symbol).encode(), (PRICE_CHANNEL_PREFIX + symbol).encode()
        )
        self._names[symbol] = heads
        return heads

    def _on_reply(self, batch: _Batch, refused: Sequence[tuple[int, str]]) -> None:
        """A batch's replies are all in: publish the events of the writes that landed."""
        if batch.kind != _Batch.SET:
            return
        updates = batch.updates
        if not refused:
            self._writer.send(batch.events, len(updates), _Batch(_Batch.PUBLISH, updates))
            if self._episode is not None and not self._book.pending:
                self._recovered()
            return
        failed = {index for index, _ in refused}
        landed = [u for i, u in enumerate(updates) if i not in failed]
        if landed:
            heads = self._names
            publish = self._packer.pack_publish
            events = b"".join(publish(self._heads_of(u[0], heads)[1], u[2]) for u in landed)
            self._writer.send(events, len(landed), _Batch(_Batch.PUBLISH, landed))
        self._book.refused(updates[i] for i in failed)
        self.quotes_refused += len(failed)
        self._set_state(SinkState.REFUSED, refused[-1][1])
        if self._task is None or self._task.done():
            self._spawn(self._retry_refused())

    def _heads_of(
        self, symbol: str, names: Mapping[str, tuple[bytes, bytes]]
    ) -> tuple[bytes, bytes]:
        heads = names.get(symbol)
        return heads if heads is not None else self._heads(symbol)

    def resend_latest(self) -> int:
        """Rewrite every symbol's newest price (the cache lost its data); returns how many."""
        count = self._book.resend_latest()
        if count and self._state is SinkState.UP and self._writer.connected:
            self._send(self._book.take_pending())
        return count

    def forget(self, symbols: Iterable[str]) -> None:
        """Symbols no longer subscribed: never rewrite their prices."""
        self._book.forget(symbols)

    # -- notices ----------------------------------------------------------------------

    def publish_status(self, event: str, details: Mapping[str, Any]) -> None:
        """Publish a notice on ``market_data.status``, in order with the price writes.

        While writes do not land the newest few notices are held and sent afterwards.
        """
        payload = _status_encoder.encode(
            {"event_type": event, "timestamp": now_rfc3339(), **details}
        )
        if self._state is SinkState.UP or self._state is SinkState.REFUSED:
            self._send_notice(payload)
        else:
            self._held_notices.append(payload)

    def _send_notice(self, payload: bytes) -> None:
        command = pack_commands([(b"PUBLISH", STATUS_CHANNEL, payload)])
        try:
            self._writer.send(command, 1, _Batch(_Batch.NOTICE, (), payload))
        except RedisClientError:
            self._held_notices.append(payload)
            return
        self.notices_published += 1

    # -- faults -----------------------------------------------------------------------

    def _on_lost(self, batches: list[_Batch], error: BaseException) -> None:
        # Called when the connection drops, oldest batch first: an update whose write or
        # event may not have gone out is rewritten if it is still its symbol's newest.
        for batch in batches:
            if batch.kind == _Batch.NOTICE:
                if batch.events:
                    self._held_notices.append(batch.events)
            else:
                self._book.refused(batch.updates)
        self._connection_lost(error)

    def _connection_lost(self, error: BaseException) -> None:
        if self._state is SinkState.CLOSED:
            return
        self._cancel_task()
        self._set_state(SinkState.DOWN, str(error))
        task = self._reconnect_task
        if task is None or task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect(), name="redis-reconnect")

    def _recovered(self) -> None:
        episode, self._episode = self._episode, None
        self._logged_errors.clear()
        self._set_state(SinkState.UP)
        if episode is None:
            return
        held = list(self._held_notices)
        self._held_notices.clear()
        for payload in held:
            self._send_notice(payload)
        logger.info(
            "Redis writes land again after %s; rewrote %d symbols",
            episode.cause,
            len(episode.rewritten),
        )
        self.publish_status(
            "redis.recovered",
            {
                "cause": episode.cause.value,
                "outage_started_at": episode.started_at,
                "symbols_rewritten": sorted(episode.rewritten),
            },
        )

    def _rewrite_pending(self) -> None:
        """Send every held update again; the episode closes when they land."""
        updates = self._book.take_pending()
        if self._episode is not None:
            self._episode.rewritten.update(u[0] for u in updates)
        if updates:
            self._send(updates)
        elif self._episode is not None and self._writer.in_flight == 0:
            self._recovered()  # nothing was held and nothing is waiting: done

    async def _reconnect(self) -> None:
        attempt = 0
        while self._state is SinkState.DOWN:
            await asyncio.sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])
            attempt += 1
            try:
                await self._writer.connect()
            except RedisClientError as exc:
                self.last_error = str(exc)
                continue
            logger.info("Redis is back; rewriting the newest price of %d symbols",
                        len(self._book.pending))  # fmt: skip
            self._set_state(SinkState.UP)  # the episode stays open until the rewrites land
            self._rewrite_pending()
            return

    async def _retry_refused(self) -> None:
        attempt = 0
        while self._state is SinkState.REFUSED:
            await asyncio.sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])
            attempt += 1
            if self._state is SinkState.REFUSED and self._writer.writable():
                self._rewrite_pending()

    async def _await_replies(self) -> None:
        try:
            await self._writer.wait_writable()
        except RedisClientError as exc:
            self._connection_lost(exc)
            return
        logger.info("Redis answers again; writing the newest price of %d symbols",
                    len(self._book.pending))  # fmt: skip
        self._set_state(SinkState.UP)
        self._rewrite_pending()
