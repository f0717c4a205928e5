"""Where a gap fill reads what the service holds and writes what it fetched: the stream's
own pipeline (:class:`StreamFillTarget`).

The fetched quotes take the path streamed ones take: the processor validates them,
drops one older than the symbol's last accepted, numbers them (``seq``) and encodes;
the sink caches, then publishes. The ``gap.filled`` notice goes through the sink too,
so it follows those writes in order (docs/architecture.md, "Gap fill").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any, Final, Protocol

import msgspec

from libs.market_data.broker.models import LatestQuote
from libs.market_data.exceptions import MarketDataError
from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.processor import QuoteProcessor
from libs.market_data.pipeline.sinks import PriceSink
from libs.market_data.stream.protocol import Quote
from libs.redis_client import RedisClient
from libs.redis_client.exceptions import RedisClientError
from libs.telemetry import instant_key

__all__ = ["FillTarget", "StreamFillTarget", "TargetUnavailableError"]

logger = logging.getLogger(__name__)

_MGET_CHUNK: Final = 500  # keys per cache read: one round trip stays small
_OTHER: Final = re.compile(r"[:/]")  # a channel prefix or a crypto pair


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
    ) -> None:
        self._processor = processor
        self._sink = sink
        self._subscribed = subscribed
        self._redis = redis_client
        self._keys = keys

    @property
    def subscribed(self) -> Set[str]:
        """The stock symbols whose quotes are wanted now. The REST fill reads stock
        quotes only: not the wildcard ``*``, other channels (``trades:AAPL``) or crypto
        pairs (``BTC/USD``), which the stream's set may hold too."""
        return frozenset(s for s in self._subscribed if s != "*" and not _OTHER.search(s))

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
        """Pass the quotes down the pipeline; returns the symbols it accepted."""
        wire = [
            Quote(
                S=q.symbol,
                bp=q.bid_price,
                bs=q.bid_size,
                ap=q.ask_price,
                t=q.timestamp,
                as_=q.ask_size,
                bx=q.bid_exchange,
                ax=q.ask_exchange,
            )
            for q in quotes
        ]
        updates = self._processor.process(wire, self._subscribed)
        if updates:
            await self._sink.write(updates)
        return [update[0] for update in updates]

    def announce(self, event: str, details: Mapping[str, Any]) -> None:
        """A notice on ``market_data.status`` once the writes already sent are cached and
        their events published: it follows them on pub/sub as well."""
        self._sink.publish_status_after_writes(event, details)
