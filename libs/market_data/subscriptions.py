"""Which symbols are wanted, and why: the desired subscriptions, kept in Redis.

A symbol can be wanted by hand (the HTTP API) and by open positions at the same time;
it stays subscribed at the broker while any source holds it, so a closed position never
removes a symbol a person subscribed. The set lives in the Redis hash
``market_data:subscriptions`` (symbol -> comma-separated sources), so a restarted
service resumes the same symbols.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from libs.market_data.alpaca_stream import AlpacaMarketDataStream
from libs.market_data.symbols import normalize_symbols
from libs.redis_client import RedisClient, RedisClientError

__all__ = ["SUBSCRIPTIONS_KEY", "SubscriptionRegistry", "SubscriptionSource"]

logger = logging.getLogger(__name__)

SUBSCRIPTIONS_KEY: Final = "market_data:subscriptions"


class SubscriptionSource(StrEnum):
    MANUAL = "manual"
    POSITIONS = "positions"


class SubscriptionRegistry:
    """The desired subscriptions with their sources, applied to a stream and persisted."""

    def __init__(
        self,
        stream: AlpacaMarketDataStream,
        store: RedisClient | None = None,
        *,
        key: str = SUBSCRIPTIONS_KEY,
    ) -> None:
        self._stream = stream
        self._store = store
        self._key = key
        self._sources: dict[str, set[SubscriptionSource]] = {}
        self._lock = asyncio.Lock()
        self._dirty = False  # a change Redis has not seen yet

    @property
    def persisted(self) -> bool:
        """False while a change could not be written to Redis."""
        return not self._dirty

    def sources(self) -> dict[str, list[str]]:
        """Every wanted symbol with its sources, sorted."""
        return {s: sorted(src.value for src in self._sources[s]) for s in sorted(self._sources)}

    def symbols(self, source: SubscriptionSource | None = None) -> list[str]:
        """Wanted symbols, all or those held by ``source``, sorted."""
        return sorted(s for s, src in self._sources.items() if source is None or source in src)

    async def restore(self) -> list[str]:
        """Load the persisted set and subscribe the stream to it; returns the symbols."""
        if self._store is None:
            return []
        try:
            stored = await self._store.hgetall(self._key)
        except RedisClientError as exc:
            logger.error("could not restore subscriptions from Redis: %s", exc)
            return []
        restored: dict[str, set[SubscriptionSource]] = {}
        for symbol, text in stored.items():
            sources = {SubscriptionSource(v) for v in text.split(",") if v in _SOURCE_VALUES}
            try:
                (valid,) = normalize_symbols([symbol])
            except ValueError:
                logger.warning("ignoring stored subscription %r: not a ticker", symbol)
                continue
            if sources:
                restored[valid] = sources
        async with self._lock:
            await self._stream.subscribe_symbols(sorted(restored))
            for symbol, sources in restored.items():
                self._sources.setdefault(symbol, set()).update(sources)
        if restored:
            logger.info("restored %d subscriptions from Redis", len(restored))
        return sorted(restored)

    async def add(self, symbols: Iterable[str], source: SubscriptionSource) -> list[str]:
        """Hold ``symbols`` for ``source``; returns those it did not hold before.

        Raises what :meth:`AlpacaMarketDataStream.subscribe_symbols` raises; then nothing
        is recorded for the refused symbols.
        """
        wanted = normalize_symbols(symbols)
        async with self._lock:
            new_at_broker = [s for s in wanted if s not in self._sources]
            if new_at_broker:
                await self._stream.subscribe_symbols(new_at_broker)
            added = [s for s in wanted if source not in self._sources.get(s, ())]
            for symbol in added:
                self._sources.setdefault(symbol, set()).add(source)
            await self._persist(added)
        return added

    async def remove(self, symbols: Iterable[str], source: SubscriptionSource) -> list[str]:
        """Release ``symbols`` for ``source``; returns those it held.

        A symbol leaves the broker only when no source holds it any more.
        """
        wanted = normalize_symbols(symbols)
        async with self._lock:
            released = [s for s in wanted if source in self._sources.get(s, ())]
            unused: list[str] = []
            for symbol in released:
                sources = self._sources[symbol]
                sources.discard(source)
                if not sources:
                    del self._sources[symbol]
                    unused.append(symbol)
            if unused:
                await self._stream.unsubscribe_symbols(unused)
            await self._persist(released)
        return released

    async def _persist(self, changed: list[str]) -> None:
        if self._store is None or not (changed or self._dirty):
            return
        try:
            if self._dirty:
                # An earlier write failed: rewrite the whole set rather than guess.
                await self._store.delete(self._key)
                changed = list(self._sources)
            present = {s: ",".join(sorted(self._sources[s])) for s in changed if s in self._sources}
            await self._store.hset(self._key, present)
            await self._store.hdel(self._key, *[s for s in changed if s not in self._sources])
            self._dirty = False
        except RedisClientError as exc:
            self._dirty = True
            logger.warning("subscriptions not saved to Redis (will retry): %s", exc)

    async def flush(self) -> bool:
        """Write pending changes to Redis if an earlier write failed; True when saved."""
        async with self._lock:
            await self._persist([])
        return not self._dirty


_SOURCE_VALUES: Final = frozenset(s.value for s in SubscriptionSource)
