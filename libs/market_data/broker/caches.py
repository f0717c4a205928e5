"""Broker reads kept a short while, so busy callers do not spend the broker's rate limits:
:class:`PreviousCloseCache` and :class:`RecentPositions` (docs/positions.md, "Where the
numbers come from, and when")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from libs.market_data.broker.models import (
    Position,
    PositionsReader,
    PreviousClose,
    PreviousClosesReader,
)

__all__ = ["PreviousCloseCache", "RecentPositions"]


class PreviousCloseCache:
    """Previous closes kept ``ttl`` seconds: they change once a day, and a busy P&L
    endpoint must not spend the data API's rate limit asking for them again and again."""

    def __init__(self, client: PreviousClosesReader, ttl: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl
        self._entries: dict[str, tuple[float, PreviousClose]] = {}

    async def get(self, symbols: Iterable[str]) -> dict[str, PreviousClose]:
        """Closes of ``symbols`` (absent where the data API has none); may raise
        :class:`~libs.market_data.exceptions.BrokerAPIError`."""
        now = time.monotonic()
        found: dict[str, PreviousClose] = {}
        missing: list[str] = []
        for symbol in dict.fromkeys(symbols):
            entry = self._entries.get(symbol)
            if entry is not None and now - entry[0] < self._ttl:
                found[symbol] = entry[1]
            else:
                missing.append(symbol)
        if missing:
            fetched = await self._client.get_previous_closes(missing)
            for symbol, close in fetched.items():
                self._entries[symbol] = (now, close)
            found.update((s, fetched[s]) for s in missing if s in fetched)
        return found


class RecentPositions:
    """Positions read at most once per ``max_age`` seconds, one read in flight at a time.

    The trading API allows 200 requests a minute per account, shared with whatever
    places the orders: a P&L endpoint polled by several screens must not spend them.
    Failures are not kept: the next call asks again.
    """

    def __init__(self, reader: PositionsReader, max_age: float = 1.0) -> None:
        self._reader = reader
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._value: tuple[list[Position], float] | None = None
        self._read_at = 0.0  # monotonic

    async def get(self) -> tuple[list[Position], float]:
        """The positions and when they were read (epoch seconds)."""
        async with self._lock:
            if self._value is not None and time.monotonic() - self._read_at < self._max_age:
                return self._value
            positions = await self._reader.get_positions()
            self._value = (positions, time.time())
            self._read_at = time.monotonic()
            return self._value
