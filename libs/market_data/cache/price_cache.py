"""Reading prices back from Redis, the way every service of the platform should."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Final

import msgspec
from pydantic import ValidationError

from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.market_data.symbols import normalize_symbols
from libs.market_data.types import PriceData
from libs.redis_client import RedisClient

__all__ = ["PriceCache", "price_age_seconds"]

logger = logging.getLogger(__name__)

_MAX_SYMBOLS: Final = 1000


def price_age_seconds(price: PriceData, now: float | None = None) -> float:
    """Seconds since the exchange timestamp of ``price`` (never negative)."""
    stamp = msgspec.convert(price.timestamp, datetime)
    return max(0.0, (time.time() if now is None else now) - stamp.timestamp())


class PriceCache:
    """Latest prices from ``price:{SYMBOL}``; counts hits and misses.

    A key that holds something unreadable counts as a miss and is logged, never raised:
    a reader must not fail because one entry is bad.
    """

    def __init__(self, client: RedisClient, keys: KeySpace = DEFAULT_KEYS) -> None:
        self._client = client
        self._keys = keys
        self.hits = 0
        self.misses = 0

    async def get(self, symbol: str) -> PriceData | None:
        """The cached price of ``symbol``, or ``None`` (missing or expired)."""
        return (await self.get_many([symbol]))[symbol.strip().upper()]

    async def get_many(self, symbols: Iterable[str]) -> dict[str, PriceData | None]:
        """Cached prices of many symbols in one round trip, ``None`` where missing."""
        wanted = normalize_symbols(symbols)
        if len(wanted) > _MAX_SYMBOLS:
            raise ValueError(f"at most {_MAX_SYMBOLS} symbols per read")
        # keys.price_key: hash-tagged on a cluster, where the client splits MGET per slot.
        raws = await self._client.mget([self._keys.price_key(s) for s in wanted])
        found: dict[str, PriceData | None] = {}
        for symbol, raw in zip(wanted, raws, strict=True):
            price = None
            if raw is not None:
                try:
                    price = PriceData.model_validate_json(raw)
                except ValidationError as exc:
                    logger.warning(
                        "unreadable cache entry %s: %s", self._keys.price_key(symbol), exc
                    )
            if price is None:
                self.misses += 1
            else:
                self.hits += 1
            found[symbol] = price
        return found
