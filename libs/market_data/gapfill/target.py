"""Where a gap fill reads what the service holds and writes what it fetched: the stream's
own pipeline (:class:`StreamFillTarget`).

The fetched quotes take the path streamed ones take: the processor validates them,
drops one older than the symbol's last accepted, numbers them (``seq``) and encodes;
the sink caches, then publishes. The ``gap.filled`` notice goes through the sink too,
so it follows those writes in order (docs/architecture.md, "Gap fill").

What a fill reads is quotes, by symbol: the wanted sets also hold other channels'
topics (``trades:AAPL``, ``bars:AAPL``) and the wildcard, which are not symbols
(:func:`fill_symbols`). Under ``*`` the fill refreshes the symbols the stream already
took quotes of (the planner's budget bounds how many); a symbol the wildcard never
quoted in this process is unknown, so not read. Crypto pairs are read from the crypto
endpoint and written as the crypto feed's quotes (fractional sizes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence, Set
from decimal import Decimal
from typing import Any, Final, Protocol

import msgspec

from libs.market_data.broker.models import LatestQuote
from libs.market_data.exceptions import MarketDataError
from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.processor import QuoteProcessor
from libs.market_data.pipeline.sinks import PriceSink
from libs.market_data.stream.messages import CryptoQuote
from libs.market_data.stream.protocol import Quote
from libs.market_data.symbols import WILDCARD, is_crypto
from libs.market_data.topics import Channel, parse_topic
from libs.redis_client import RedisClient
from libs.redis_client.exceptions import RedisClientError
from libs.telemetry import instant_key

__all__ = ["FillTarget", "StreamFillTarget", "TargetUnavailableError", "fill_symbols"]

logger = logging.getLogger(__name__)

_MGET_CHUNK: Final = 500  # keys per cache read: one round trip stays small


def fill_symbols(topics: Iterable[str]) -> list[str]:
    """The symbols whose quotes ``topics`` want by name (stocks and crypto pairs), in
    order: not other channels' topics, not the wildcard."""
    symbols: dict[str, None] = {}
    for topic in topics:
        channel, symbol = parse_topic(topic)
        if channel is Channel.QUOTES and symbol != WILDCARD:
            symbols.setdefault(symbol, None)
    return list(symbols)


class TargetUnavailableError(MarketDataError):
    """What the service holds could not be read (Redis did not answer)."""


class FillTarget(Protocol):
    """What the runner needs of the pipeline; the stream's, or a test's."""

    @property
    def subscribed(self) -> Set[str]: ...

    async def held_instants(self, symbols: Sequence[str]) -> dict[str, str | None]: ...

    def processed_instants(self, symbols: Iterable[str]) -> dict[str, str | None]: ...

    async def write(self, quotes: Sequence[LatestQuote]) -> list[str]: ...

    def announce(self, event: str, details: Mapping[str, Any]) -> None: ...


class _CachedStamp(msgspec.Struct):
    timestamp: str


_stamp_decoder: Final = msgspec.json.Decoder(_CachedStamp)


def _later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)


class StreamFillTarget:
    """The stream's processor and sink, and the cache they write, as a fill sees them."""

    def __init__(
        self,
        processor: QuoteProcessor,
        sink: PriceSink,
        subscribed: Set[str],
        redis_client: RedisClient,
        keys: KeySpace,
        *,
        crypto_subscribed: Set[str] = frozenset(),
    ) -> None:
        self._processor = processor
        self._sink = sink
        self._subscribed = subscribed  # the stock feed's wanted topics (live view)
        self._crypto_subscribed = crypto_subscribed  # the crypto feed's
        self._redis = redis_client
        self._keys = keys

    @property
    def subscribed(self) -> Set[str]:
        """The symbols a fill may read now: those whose quotes are wanted by name on
        either feed and, under ``*``, the stocks the stream has taken quotes of."""
        stocks = [s for s in fill_symbols(self._subscribed) if not is_crypto(s)]
        pairs = [s for s in fill_symbols(self._crypto_subscribed) if is_crypto(s)]
        readable = {*stocks, *pairs}
        if WILDCARD in self._subscribed:
            readable.update(s for s in self._processor.last_accepted if not is_crypto(s))
        return frozenset(readable)

    def processed_instants(self, symbols: Iterable[str]) -> dict[str, str | None]:
        """Each symbol's last accepted exchange time in this process."""
        return {s: self._processor.last_instant(s) for s in symbols}

    async def held_instants(self, symbols: Sequence[str]) -> dict[str, str | None]:
        """The newer of the cached record's timestamp and this process's last accepted
        one, per symbol. After a restart the process holds nothing, so the cache is
        what a REST quote must beat. Raises :class:`TargetUnavailableError`."""
        held = self.processed_instants(symbols)
        for start in range(0, len(symbols), _MGET_CHUNK):
            chunk = symbols[start : start + _MGET_CHUNK]
            try:
                raws = await self._redis.mget([self._keys.price_key(s) for s in chunk])
            except RedisClientError as exc:
                raise TargetUnavailableError(f"cache read failed: {exc}") from exc
            for symbol, raw in zip(chunk, raws, strict=True):
                if raw is None:
                    continue
                try:
                    cached = instant_key(_stamp_decoder.decode(raw).timestamp)
                except (msgspec.MsgspecError, ValueError):
                    # Unreadable: nothing to protect; the fill overwrites it.
                    logger.warning("gap fill: unreadable cached price of %s", symbol)
                    continue
                held[symbol] = _later(held[symbol], cached)
        return held

    async def write(self, quotes: Sequence[LatestQuote]) -> list[str]:
        """Pass the quotes down the pipeline, each as its feed's quote; returns the
        symbols it accepted."""
        stocks = [
            Quote(
                S=q.symbol,
                bp=q.bid_price,
                bs=int(q.bid_size),  # whole shares: decoded as int for a stock
                ap=q.ask_price,
                t=q.timestamp,
                as_=int(q.ask_size),
                bx=q.bid_exchange,
                ax=q.ask_exchange,
            )
            for q in quotes
            if not is_crypto(q.symbol)
        ]
        pairs = [
            CryptoQuote(
                S=q.symbol,
                bp=q.bid_price,
                bs=Decimal(q.bid_size),
                ap=q.ask_price,
                t=q.timestamp,
                as_=Decimal(q.ask_size),
            )
            for q in quotes
            if is_crypto(q.symbol)
        ]
        updates = self._processor.process(stocks, self._subscribed) if stocks else []
        if pairs:
            updates += self._processor.process(pairs, self._crypto_subscribed, fractional=True)
        if updates:
            await self._sink.write(updates)
        return [update[0] for update in updates]

    def announce(self, event: str, details: Mapping[str, Any]) -> None:
        """A notice on ``market_data.status`` once the writes already sent are cached and
        their events published: it follows them on pub/sub as well."""
        self._sink.publish_status_after_writes(event, details)
