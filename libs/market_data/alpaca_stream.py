"""``AlpacaMarketDataStream``: Alpaca quotes into Redis, cache first, then the event.

Wires :class:`~libs.market_data.stream.connection.AlpacaConnection` (socket, auth,
subscriptions, reconnects) to :class:`~libs.market_data.pipeline.processor.QuoteProcessor`
(exact-decimal validation and encoding) and :class:`~libs.market_data.pipeline.sink.RedisPriceSink`
(one pipelined Redis write per received frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable
from typing import Any, Final

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.exceptions import QuoteHandlingError
from libs.market_data.pipeline.processor import PriceUpdate, QuoteProcessor
from libs.market_data.pipeline.sink import RedisPriceSink
from libs.market_data.stream.connection import AlpacaConnection, ConnectionState
from libs.market_data.stream.protocol import DecodedFrame
from libs.market_data.symbols import normalize_symbols
from libs.market_data.types import PriceData, PriceUpdateEvent, QuoteData
from libs.redis_client import EventPublisher, RedisClient, RedisClientError
from libs.telemetry import LATENCY_BUCKETS, Histogram, epoch_seconds

__all__ = ["ALPACA_STREAM_HOST", "HEARTBEAT_KEY", "AlpacaMarketDataStream", "feed_url"]

logger = logging.getLogger(__name__)

ALPACA_STREAM_HOST: Final = "wss://stream.data.alpaca.markets"
# Last time this service was streaming (epoch seconds as text), refreshed every
# HEARTBEAT_INTERVAL while connected: after a crash the next start announces the gap.
HEARTBEAT_KEY: Final = "market_data:heartbeat"
HEARTBEAT_INTERVAL: Final = 1.0
_HEARTBEAT_TTL: Final = 7 * 24 * 3600
_V1BETA1_FEEDS: Final = frozenset({"boats", "overnight"})


def feed_url(feed: str, host: str = ALPACA_STREAM_HOST) -> str:
    """The stock stream URL of a feed (``iex``, ``sip``, ``delayed_sip``, ``test``, ...)."""
    version = "v1beta1" if feed in _V1BETA1_FEEDS else "v2"
    return f"{host}/{version}/{feed}"


class AlpacaMarketDataStream:
    """Real-time quotes from Alpaca, validated and kept in Redis.

    ``price:{SYMBOL}`` holds the latest ``PriceData`` JSON for ``price_ttl`` seconds and
    ``price.updated.{SYMBOL}`` announces each change with a ``PriceUpdateEvent``.
    """

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        redis_client: RedisClient,
        event_publisher: EventPublisher,
        price_ttl: int = 300,
        *,
        feed: str = "iex",
        url: str | None = None,
        max_reconnect_attempts: int = 10,
        reconnect_base_delay: float = 5.0,
        reconnect_max_delay: float = 300.0,
        step_timeout: float = 10.0,
        compression: str | None = "deflate",
        stall_timeout: float | None = 120.0,
        redis_write_timeout: float = 1.0,
    ) -> None:
        if price_ttl <= 0:
            raise ValueError("price_ttl must be a positive number of seconds")
        self.redis_client = redis_client
        self.event_publisher = event_publisher
        self.price_ttl = price_ttl
        self._processor = QuoteProcessor()
        self._sink = RedisPriceSink(
            redis_client.params, price_ttl, write_timeout=redis_write_timeout
        )
        self._connection = AlpacaConnection(
            url or feed_url(feed),
            api_key,
            secret_key,
            on_frame=self._handle_frame,
            backoff=BackoffPolicy(
                base=reconnect_base_delay,
                maximum=reconnect_max_delay,
                max_attempts=max_reconnect_attempts,
            ),
            step_timeout=step_timeout,
            compression=compression,
            stall_timeout=stall_timeout,
            on_status=self._sink.publish_status,
        )
        self._running = False
        self._sink_started = False
        self._finished = asyncio.Event()
        self._finished.set()
        # Exchange timestamp -> cache write of a frame's last accepted quote (a frame's
        # quotes share one write). At most one sample per interval: at high frame rates
        # the ~0.7 us of a sample would cost a few percent of one-quote frames, while a
        # thousand samples a second describe the distribution just as well.
        self.cache_write_latency = Histogram(LATENCY_BUCKETS)
        self.latency_sample_interval = 0.001
        self._next_latency_sample = 0.0

    # -- subscriptions ----------------------------------------------------------------

    async def subscribe_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Subscribe to quotes; returns the symbols newly added (duplicates filtered).

        Works before :meth:`start` and while connected. Raises
        :class:`~libs.market_data.exceptions.InvalidSymbolError` for a bad ticker and
        :class:`~libs.market_data.exceptions.SubscriptionError` if the server refuses.
        """
        return await self._connection.subscribe(normalize_symbols(symbols))

    async def unsubscribe_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Unsubscribe; returns the symbols that were subscribed and now are not."""
        removed = await self._connection.unsubscribe(normalize_symbols(symbols))
        self._processor.forget(removed)
        self._sink.forget(removed)
        return removed

    def get_subscribed_symbols(self) -> list[str]:
        """The symbols we want quotes for, sorted."""
        return sorted(self._connection.desired)

    def last_update_ages(self, now: float | None = None) -> dict[str, float | None]:
        """Seconds since each subscribed symbol's last accepted quote (None: none yet)."""
        current = time.time() if now is None else now
        last = self._processor.last_accepted
        ages: dict[str, float | None] = {}
        for symbol in sorted(self._connection.desired):
            at = last.get(symbol)
            ages[symbol] = None if at is None else max(0.0, current - at)
        return ages

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and stream until :meth:`stop`, reconnecting with backoff.

        Raises :class:`~libs.market_data.exceptions.AuthenticationError` on refused
        credentials and :class:`~libs.market_data.exceptions.StreamConnectionError`
        once the reconnect attempts are exhausted.
        """
        if self._running:
            raise RuntimeError("stream already started")
        self._running = True
        self._finished.clear()
        # Before any await: a stop() from here on must be seen by the connection loop.
        self._connection.reset()
        heartbeat: asyncio.Task[None] | None = None
        try:
            await self._ensure_sink()
            await self._resume_from_heartbeat()
            heartbeat = asyncio.create_task(self._beat(), name="market-data-heartbeat")
            await self._connection.run()
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            self._running = False
            self._finished.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the socket cleanly, flush pending Redis writes, release connections."""
        await self._connection.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finished.wait(), timeout)
        await self._sink.close(timeout)
        self._sink_started = False

    def is_connected(self) -> bool:
        """True while authenticated and streaming."""
        return self._connection.is_connected()

    @property
    def state(self) -> ConnectionState:
        return self._connection.state

    @property
    def connection(self) -> AlpacaConnection:
        return self._connection

    @property
    def sink(self) -> RedisPriceSink:
        return self._sink

    def get_connection_stats(self) -> dict[str, Any]:
        """Counters and state, for ``/health`` and operators."""
        c = self._connection
        p = self._processor
        rejected = {reason.value: count for reason, count in sorted(p.rejected.items())}
        return {
            "state": c.state.value,
            "connected": c.is_connected(),
            "url": c.url,
            "reconnect_attempts": c.reconnect_attempts,
            "max_reconnect_attempts": c.backoff.max_attempts,
            "subscribed_symbols": len(c.desired),
            "confirmed_symbols": len(c.confirmed),
            "connections_opened": c.connections_opened,
            "frames_received": c.frames_received,
            "quotes_received": p.accepted + sum(rejected.values()),
            "quotes_accepted": p.accepted,
            "quotes_rejected": rejected,
            "malformed_messages": c.malformed_messages,
            "other_messages": c.other_messages,
            "error_frames": c.error_frames,
            "stalls_detected": c.stalls_detected,
            "last_error": c.last_error,
            "connected_since": c.connected_since,
            "last_data_at": c.last_data_at,
            "reconnect_causes": dict(sorted(c.reconnect_causes.items())),
            **self._sink.stats(),
        }

    def histograms(self) -> dict[str, Histogram]:
        """The stream's histograms, for an exporter to read at scrape time."""
        return {
            "cache_write_latency": self.cache_write_latency,
            # The sink keeps its writer private; the histogram is read, never changed.
            "redis_round_trip": self._sink.round_trip_seconds,
        }

    # -- quotes ---------------------------------------------------------------------------

    async def _handle_frame(self, frame: DecodedFrame) -> None:
        updates = self._processor.process(frame.quotes, self._connection.desired)
        if updates:
            await self._sink.write(updates)
            # Monotonic: a wall clock set back must not pause the sampling.
            tick = time.monotonic()
            if tick >= self._next_latency_sample:
                self._next_latency_sample = tick + self.latency_sample_interval
                self._observe_latency(updates[-1][2])

    def _observe_latency(self, event_json: bytes) -> None:
        if not self._sink.connected:
            return  # deferred for an outage: not written yet, nothing to measure
        # The event JSON ends with "timestamp":"<exchange time>"}: slice it out rather
        # than decode the JSON.
        try:
            stamp = epoch_seconds(event_json[event_json.rfind(b'"', 0, -2) + 1 : -2])
        except ValueError:
            return
        latency = time.time() - stamp
        self.cache_write_latency.observe(latency if latency > 0.0 else 0.0)

    async def _resume_from_heartbeat(self) -> None:
        """After a crash, the first connection announces the gap since the last beat."""
        if self._connection.disconnected_at is not None:
            return  # restarted in-process: the connection knows its own gap
        try:
            async with asyncio.timeout(self.redis_client.params.socket_timeout):
                raw = await self.redis_client.get(HEARTBEAT_KEY)
        except (TimeoutError, RedisClientError) as exc:
            logger.warning("could not read the last heartbeat (%s); no gap announced", exc)
            return
        if raw is None:
            return
        try:
            last = float(raw)
        except ValueError:
            logger.warning("ignoring unreadable heartbeat %r", raw[:40])
            return
        if math.isfinite(last):
            self._connection.disconnected_at = last

    async def _beat(self) -> None:
        # Through the command client, not the price writer: a beat has no order to keep
        # with the prices, and must not show up in the writer's per-frame figures.
        while True:
            if self._connection.is_connected():
                try:
                    async with asyncio.timeout(HEARTBEAT_INTERVAL):
                        await self.redis_client.set(
                            HEARTBEAT_KEY, b"%.6f" % time.time(), ttl=_HEARTBEAT_TTL
                        )
                except (TimeoutError, RedisClientError) as exc:
                    logger.debug("heartbeat not written: %s", exc)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def _ensure_sink(self) -> None:
        if not self._sink_started:
            self._sink_started = True
            await self._sink.start()

    async def handle_quote(self, quote: QuoteData) -> PriceData:
        """Cache and publish one already-validated quote, waiting until Redis has it.

        For replays and tools; the stream itself takes the batched path. Raises
        :class:`~libs.market_data.exceptions.QuoteHandlingError` if Redis cannot take it.
        """
        price = PriceData.from_quote(quote)
        event = PriceUpdateEvent.from_quote(quote)
        update: PriceUpdate = (
            quote.symbol,
            price.model_dump_json().encode(),
            event.model_dump_json().encode(),
        )
        await self._ensure_sink()
        if not self._sink.connected:
            raise QuoteHandlingError(f"Redis unavailable: {self._sink.last_error}")
        await self._sink.write([update])
        if not await self._sink.flush(self.redis_client.params.socket_timeout):
            raise QuoteHandlingError("Redis did not acknowledge the write in time")
        return price
