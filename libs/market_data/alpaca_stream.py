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
import time
from collections.abc import Iterable
from typing import Any, Final

from libs.market_data import defaults
from libs.market_data.backoff import BackoffPolicy
from libs.market_data.exceptions import QuoteHandlingError
from libs.market_data.heartbeat import Heartbeat
from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.processor import PriceUpdate, QuoteProcessor
from libs.market_data.pipeline.sink import RedisPriceSink
from libs.market_data.stats import StreamStats
from libs.market_data.stream.connection import AlpacaConnection, ConnectionState
from libs.market_data.stream.protocol import DecodedFrame
from libs.market_data.stream.records import ConnectionStats, StatusNotice
from libs.market_data.symbols import normalize_symbols
from libs.market_data.types import PriceData, PriceUpdateEvent, QuoteData
from libs.redis_client import EventPublisher, RedisClient
from libs.telemetry import LATENCY_BUCKETS, Histogram, epoch_seconds

__all__ = ["ALPACA_STREAM_HOST", "AlpacaMarketDataStream", "feed_url"]

logger = logging.getLogger(__name__)

ALPACA_STREAM_HOST: Final = "wss://stream.data.alpaca.markets"
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
        price_ttl: int = defaults.PRICE_CACHE_TTL,
        *,
        feed: str = "iex",
        url: str | None = None,
        max_reconnect_attempts: int = defaults.MAX_RECONNECT_ATTEMPTS,
        reconnect_base_delay: float = defaults.RECONNECT_BASE_DELAY,
        reconnect_max_delay: float = defaults.RECONNECT_MAX_DELAY,
        step_timeout: float = defaults.STEP_TIMEOUT,
        compression: str | None = "deflate",
        stall_timeout: float | None = defaults.STALL_TIMEOUT,
        redis_write_timeout: float = defaults.REDIS_WRITE_TIMEOUT,
        namespace: str = "",
        epoch: str | None = None,
    ) -> None:
        if price_ttl <= 0:
            raise ValueError("price_ttl must be a positive number of seconds")
        self.redis_client = redis_client
        self.event_publisher = event_publisher
        self.price_ttl = price_ttl
        # Sequence numbers restart per epoch: one per instance unless the caller passes one.
        self._processor = QuoteProcessor(epoch)
        self.keys = KeySpace(namespace)
        self._sink = RedisPriceSink(
            redis_client.params, price_ttl, write_timeout=redis_write_timeout, keys=self.keys
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
            on_notice=self._forward_notice,
        )
        self._heartbeat = Heartbeat(redis_client, self._connection.is_connected, self.keys)
        # The connection's live, read-only view of the wanted symbols: read per frame, so
        # held here rather than looked up through the connection each time.
        self._subscribed = self._connection.desired
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
        return sorted(self._subscribed)

    def last_update_ages(self, now: float | None = None) -> dict[str, float | None]:
        """Seconds since each subscribed symbol's last accepted quote (None: none yet)."""
        current = time.time() if now is None else now
        return self._processor.ages(sorted(self._subscribed), current)

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
            if self._connection.disconnected_at is None:  # else: in-process restart
                last = await self._heartbeat.last()
                if last is not None:
                    self._connection.resume_gap(last)
            heartbeat = asyncio.create_task(self._heartbeat.run(), name="market-data-heartbeat")
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
    def epoch(self) -> str:
        """The epoch of this stream's ``seq`` numbers (in every record and event)."""
        return self._processor.epoch

    @property
    def connection(self) -> AlpacaConnection:
        return self._connection

    @property
    def sink(self) -> RedisPriceSink:
        return self._sink

    def connection_stats(self) -> ConnectionStats:
        """The broker connection's counters, as a typed record."""
        return self._connection.stats()

    def stats(self) -> StreamStats:
        """Counters and state of every stage, typed (``/health``, ``/metrics``)."""
        return StreamStats(
            connection=self._connection.stats(),
            processor=self._processor.snapshot(),
            sink=self._sink.snapshot(),
        )

    def get_connection_stats(self) -> dict[str, Any]:
        """Counters and state, for ``/health`` and operators (the spec's dict)."""
        return self.stats().as_dict()

    def histograms(self) -> dict[str, Histogram]:
        """The stream's histograms, for an exporter to read at scrape time."""
        return {
            "cache_write_latency": self.cache_write_latency,
            # The sink keeps its writer private; the histogram is read, never changed.
            "redis_round_trip": self._sink.round_trip_seconds,
        }

    # -- quotes ---------------------------------------------------------------------------

    async def _handle_frame(self, frame: DecodedFrame) -> None:
        updates = self._processor.process(frame.quotes, self._subscribed)
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

    def _forward_notice(self, notice: StatusNotice) -> None:
        # Notices flow down like frames: connection -> façade -> sink, which publishes
        # them in order with the price writes.
        self._sink.publish_status(notice.event, notice.details)

    async def _ensure_sink(self) -> None:
        if not self._sink_started:
            self._sink_started = True
            await self._sink.start()

    async def handle_quote(self, quote: QuoteData) -> PriceData:
        """Cache and publish one already-validated quote, waiting until Redis has it.

        For replays and tools; the stream itself takes the batched path. Raises
        :class:`~libs.market_data.exceptions.QuoteHandlingError` if Redis cannot take it.
        """
        seq = self._processor.next_seq(quote.symbol)
        epoch = self._processor.epoch
        price = PriceData.from_quote(quote, seq=seq, epoch=epoch)
        event = PriceUpdateEvent.from_quote(quote, seq=seq, epoch=epoch)
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
