"""The Redis side of the pipeline: cache, then publish, one write per batch.

For every accepted quote: ``SET price:{SYM} <PriceData JSON> EX ttl`` then
``PUBLISH price.updated.{SYM} <PriceUpdateEvent JSON>``; a batch (one received frame)
goes out as one write on a pipelined connection, several batches in flight.

When Redis is unreachable the sink keeps only the newest update of each symbol
(memory bounded by the subscription count, never a queue of everything) and writes
those as soon as Redis is back, so the cache converges on the newest prices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from libs.market_data.pipeline import PriceUpdate
from libs.redis_client import RedisConnectionParams
from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.resp import SetPublishPacker
from libs.redis_client.writer import PipelinedWriter, pack_commands
from libs.telemetry import Histogram

__all__ = ["PRICE_CHANNEL_PREFIX", "PRICE_KEY_PREFIX", "STATUS_CHANNEL", "RedisPriceSink"]

logger = logging.getLogger(__name__)

PRICE_KEY_PREFIX: Final = "price:"
PRICE_CHANNEL_PREFIX: Final = "price.updated."
# Gap notices for consumers: after one, re-read the cache rather than trust the events.
STATUS_CHANNEL: Final = "market_data.status"
_MAX_HELD_NOTICES: Final = 32
_NAME_CACHE_LIMIT: Final = 100_000
_RECONNECT_DELAYS: Final = (0.05, 0.1, 0.2, 0.5)  # then every 0.5 s: back within a second


_status_encoder: Final = msgspec.json.Encoder()


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class RedisPriceSink:
    """Writes accepted quotes to Redis; survives Redis outages without unbounded memory."""

    def __init__(
        self,
        params: RedisConnectionParams,
        ttl: int,
        *,
        max_in_flight: int = 32,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be a positive number of seconds")
        self._params = params
        self._packer = SetPublishPacker(ttl)
        self._writer: PipelinedWriter[Sequence[PriceUpdate]] = PipelinedWriter(
            params, max_in_flight=max_in_flight, on_lost=self._on_lost
        )
        self._names: dict[str, tuple[bytes, bytes]] = {}
        # Newest update per symbol not known to have landed (Redis down or in doubt).
        self._pending: dict[str, PriceUpdate] = {}
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closed = False
        self._held_notices: deque[bytes] = deque(maxlen=_MAX_HELD_NOTICES)
        self._outage_started: float | None = None
        self.notices_published = 0
        self.quotes_written = 0
        self.quotes_deferred = 0
        self.outages = 0
        self.last_error: str | None = None

    # -- state ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._writer.connected

    @property
    def pending_symbols(self) -> int:
        return len(self._pending)

    @property
    def round_trip_seconds(self) -> Histogram:
        """Redis round trip per written batch, for the metrics endpoint."""
        return self._writer.round_trip_seconds

    def stats(self) -> dict[str, Any]:
        writer = self._writer
        return {
            "redis_connected": writer.connected,
            "quotes_written": self.quotes_written,
            "quotes_deferred": self.quotes_deferred,
            "pending_symbols": len(self._pending),
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

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; if Redis is not there yet, keep trying in the background."""
        self._closed = False
        try:
            await self._writer.connect()
        except RedisClientError as exc:
            self._note_outage(exc)
            self._ensure_reconnecting()

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything written so far is acknowledged by Redis."""
        return await self._writer.flush(timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is in flight (bounded by ``timeout``), then close."""
        self._closed = True
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._writer.connected:
            if self._pending:
                self._send(list(self._pending.values()))
                self._pending.clear()
            await self._writer.flush(timeout)
        await self._writer.close()

    # -- writing ----------------------------------------------------------------------

    async def write(self, updates: Sequence[PriceUpdate]) -> None:
        """Cache and publish ``updates`` in order; returns once they are on the wire."""
        if not updates:
            return
        writer = self._writer
        if not writer.connected:
            pending = self._pending
            for update in updates:
                pending[update[0]] = update
            self.quotes_deferred += len(updates)
            self._ensure_reconnecting()
            return
        self._send(updates)
        try:
            await writer.wait_writable()
        except RedisClientError as exc:
            self._note_outage(exc)

    def _send(self, updates: Sequence[PriceUpdate]) -> None:
        names = self._names
        pack = self._packer.pack
        parts: list[bytes] = []
        append = parts.append
        for update in updates:
            symbol, price_json, event_json = update
            heads = names.get(symbol)
            if heads is None:
                heads = self._heads(symbol)
            append(pack(heads, price_json, event_json))
        try:
            self._writer.send(b"".join(parts), 2 * len(updates), updates)
        except RedisClientError as exc:
            for update in updates:
                self._pending[update[0]] = update
            self.quotes_deferred += len(updates)
            self._note_outage(exc)
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

    def publish_status(self, event: str, details: Mapping[str, Any]) -> None:
        """Publish a notice on ``market_data.status``, in order with the price writes.

        While Redis is down the newest few notices are held and sent once it is back.
        """
        payload = _status_encoder.encode(
            {"event_type": event, "timestamp": _now_rfc3339(), **details}
        )
        if self._writer.connected:
            self._send_notice(payload)
        else:
            self._held_notices.append(payload)

    def _send_notice(self, payload: bytes) -> None:
        try:
            self._writer.send(pack_commands([(b"PUBLISH", STATUS_CHANNEL, payload)]), 1, ())
        except RedisClientError:
            self._held_notices.append(payload)
            return
        self.notices_published += 1

    # -- outages ----------------------------------------------------------------------

    def _on_lost(self, batches: list[Sequence[PriceUpdate]], error: BaseException) -> None:
        # Called at the moment the connection drops, oldest batch first, before any
        # newer update can reach _pending: later entries rightly overwrite earlier ones.
        pending = self._pending
        for batch in batches:
            for update in batch:
                pending[update[0]] = update
        self._note_outage(error)
        if not self._closed:
            self._ensure_reconnecting()

    def _note_outage(self, error: BaseException) -> None:
        if self._outage_started is None:
            self._outage_started = time.time()
        message = str(error)
        if self.last_error != message or not self._reconnect_task:
            logger.warning("Redis unavailable (%s); keeping the newest price per symbol", message)
        self.last_error = message

    def _ensure_reconnecting(self) -> None:
        if self._closed or (self._reconnect_task is not None and not self._reconnect_task.done()):
            return
        self.outages += 1
        self._reconnect_task = asyncio.create_task(self._reconnect(), name="redis-reconnect")

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closed:
            delay = _RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)]
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await self._writer.connect()
            except RedisClientError as exc:
                self.last_error = str(exc)
                continue
            recovered = list(self._pending.values())
            self._pending.clear()
            logger.info("Redis is back; rewriting the newest price of %d symbols", len(recovered))
            if recovered:
                self._send(recovered)
            held = list(self._held_notices)
            self._held_notices.clear()
            for payload in held:
                self._send_notice(payload)
            started, self._outage_started = self._outage_started, None
            self.publish_status(
                "redis.recovered",
                {
                    "outage_started_at": started,
                    "symbols_rewritten": sorted(update[0] for update in recovered),
                },
            )
            return
