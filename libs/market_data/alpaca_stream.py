"""``AlpacaMarketDataStream``: Alpaca quotes into Redis, cache first, then the event.

Wires :class:`~libs.market_data.stream.connection.AlpacaConnection` (socket, auth,
subscriptions, reconnects) to :class:`~libs.market_data.pipeline.processor.QuoteProcessor`
(exact-decimal validation and encoding) and :class:`~libs.market_data.pipeline.sink.RedisPriceSink`
(one pipelined Redis write per received frame). Trades and bars take
:class:`~libs.market_data.pipeline.events.EventProcessor` into the same write; crypto
pairs go to a second connection, on Alpaca's crypto feed (docs/architecture.md, "Feeds").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Set
from typing import Any

from libs.market_data import defaults
from libs.market_data.backoff import BackoffPolicy
from libs.market_data.broker.models import LatestQuotesReader
from libs.market_data.exceptions import QuoteHandlingError
from libs.market_data.gapfill import GapFiller, GapFillPolicy, StreamFillTarget
from libs.market_data.heartbeat import Heartbeat
from libs.market_data.pipeline.events import EventProcessor
from libs.market_data.pipeline.processor import PriceUpdate, QuoteProcessor
from libs.market_data.pipeline.sinks import PriceSink, build_sink, keyspace_for
from libs.market_data.stream.connection import AlpacaConnection
from libs.market_data.stream.failures import RetryPolicy, TakeoverRetry, TakeoverSchedule
from libs.market_data.stream.feeds import ALPACA_STREAM_HOST, Feeds, crypto_feed_url, feed_url
from libs.market_data.stream.protocol import DecodedFrame, decode_crypto_frame
from libs.market_data.stream.records import StatusNotice
from libs.market_data.stream_readouts import StreamReadouts
from libs.market_data.stream_topics import StreamTopics
from libs.market_data.types import PriceData, PriceUpdateEvent, QuoteData
from libs.redis_client import EventPublisher, RedisClient
from libs.redis_client.writer import ConnectionGuard
from libs.telemetry import LATENCY_BUCKETS, Histogram, epoch_seconds

__all__ = ["ALPACA_STREAM_HOST", "AlpacaMarketDataStream", "crypto_feed_url", "feed_url"]

logger = logging.getLogger(__name__)


class AlpacaMarketDataStream(StreamTopics, StreamReadouts):
    """Real-time quotes from Alpaca, validated and kept in Redis.

    ``price:{SYMBOL}`` holds the latest ``PriceData`` JSON for ``price_ttl`` seconds and
    ``price.updated.{SYMBOL}`` announces each change with a ``PriceUpdateEvent``. The
    subscription methods are :class:`~libs.market_data.stream_topics.StreamTopics`', the
    stats :class:`~libs.market_data.stream_readouts.StreamReadouts`'.
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
        connection_guard: ConnectionGuard | None = None,
        latest_quotes: LatestQuotesReader | None = None,
        gap_fill: GapFillPolicy | None = None,
        crypto_feed: str = "us",
        crypto_url: str | None = None,
        takeover: TakeoverSchedule | None = None,
    ) -> None:
        if price_ttl <= 0:
            raise ValueError("price_ttl must be a positive number of seconds")
        self.redis_client = redis_client
        self.event_publisher = event_publisher
        self.price_ttl = price_ttl
        # Sequence numbers restart per epoch: one per instance unless the caller passes one.
        self._processor = QuoteProcessor(epoch)
        self._events = EventProcessor(self._processor)
        # Hash-tagged names and one writer per primary on a Redis Cluster (docs/cluster.md).
        self.keys = keyspace_for(redis_client, namespace)
        self._sink: PriceSink = build_sink(
            redis_client,
            price_ttl,
            write_timeout=redis_write_timeout,
            keys=self.keys,
            guard=connection_guard,
        )
        backoff = BackoffPolicy(
            base=reconnect_base_delay,
            maximum=reconnect_max_delay,
            max_attempts=max_reconnect_attempts,
        )

        def retry() -> RetryPolicy | None:
            # A leader (``takeover`` given) retries a 406 of its term's start on a short
            # schedule: the broker still holds the previous leader's socket
            # (docs/leadership.md). None: the backoff alone, as one instance.
            return None if takeover is None else TakeoverRetry(backoff, takeover)

        options: dict[str, Any] = {
            "backoff": backoff,
            "step_timeout": step_timeout,
            "compression": compression,
            "stall_timeout": stall_timeout,
            "on_notice": self._forward_notice,
        }
        self._connection = AlpacaConnection(
            url or feed_url(feed),
            api_key,
            secret_key,
            on_frame=self._handle_frame,
            retry=retry(),
            **options,
        )
        # Crypto pairs: the same policies, on a connection of its own to the crypto feed.
        crypto = AlpacaConnection(
            crypto_url or crypto_feed_url(crypto_feed),
            api_key,
            secret_key,
            on_frame=self._handle_crypto_frame,
            decode=decode_crypto_frame,
            retry=retry(),
            **options,
        )
        self._feeds = Feeds(self._connection, crypto, first_wait=2 * step_timeout)
        self._crypto_subscribed = crypto.desired
        self._heartbeat = Heartbeat(redis_client, self._connection.is_connected, self.keys)
        # The connection's live, read-only view of the wanted symbols: read per frame, so
        # held here rather than looked up through the connection each time.
        self._subscribed = self._connection.desired
        # Gap fill from REST latest quotes, when a reader is given (docs/architecture.md,
        # "Gap fill"): after reconnects, Redis recoveries and new subscriptions.
        self.gap_fill: GapFiller | None = None
        if latest_quotes is not None:
            target = StreamFillTarget(
                self._processor,
                self._sink,
                self._subscribed,
                redis_client,
                self.keys,
                crypto_subscribed=self._crypto_subscribed,
            )
            self.gap_fill = GapFiller(latest_quotes, target, gap_fill)
            self._sink.notice_listener = self.gap_fill.on_notice
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
        filler: asyncio.Task[None] | None = None
        try:
            await self._ensure_sink()
            if self._connection.disconnected_at is None:  # else: in-process restart
                last = await self._heartbeat.last()
                if last is not None:
                    self._connection.resume_gap(last)
            heartbeat = asyncio.create_task(self._heartbeat.run(), name="market-data-heartbeat")
            if self.gap_fill is not None:
                filler = asyncio.create_task(self.gap_fill.run(), name="market-data-gap-fill")
            self._feeds.running(True)
            await self._connection.run()
        finally:
            self._feeds.running(False)
            if heartbeat is not None:
                heartbeat.cancel()
            if filler is not None:
                filler.cancel()
            self._running = False
            self._finished.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the socket cleanly, flush pending Redis writes, release connections."""
        await self._feeds.stop_crypto(timeout)
        await self._connection.stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._finished.wait()
        await self._sink.close(timeout)
        self._sink_started = False

    @property
    def epoch(self) -> str:
        """The epoch of this stream's ``seq`` numbers (in every record and event)."""
        return self._processor.epoch

    def begin_epoch(self, epoch: str) -> None:
        """Number from 1 again in a new epoch (a leadership term, docs/leadership.md)."""
        if self._running:
            raise RuntimeError("the epoch changes only while the stream is stopped")
        self._processor.begin_epoch(epoch)
        self._sink.forget_all()  # held records of the old epoch must never be rewritten

    async def open_sink(self) -> None:
        """Connect the Redis writer now (``start`` does it too), so notices can go first."""
        await self._ensure_sink()

    # -- quotes ---------------------------------------------------------------------------

    async def _handle_frame(self, frame: DecodedFrame) -> None:
        await self._write(frame, self._subscribed, False)

    async def _handle_crypto_frame(self, frame: DecodedFrame) -> None:
        await self._write(frame, self._crypto_subscribed, True)

    async def _write(self, frame: DecodedFrame, wanted: Set[str], fractional: bool) -> None:
        # A frame's quotes, trades, then bars: one write (each topic keeps its order).
        if frame.block is not None:  # the native path (libs/market_data/native)
            updates = self._processor.process_block(frame.block, wanted)
        else:
            updates = self._processor.process(frame.quotes, wanted, fractional=fractional)
        quotes = len(updates)
        if frame.trades:
            updates += self._events.trades_of(frame.trades, wanted)
        if frame.bars:
            updates += self._events.bars_of(frame.bars, wanted)
        if updates:
            await self._sink.write(updates)
            # Monotonic: a wall clock set back must not pause the sampling.
            tick = time.monotonic()
            if quotes and tick >= self._next_latency_sample:
                self._next_latency_sample = tick + self.latency_sample_interval
                self._observe_latency(updates[quotes - 1][2])

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
