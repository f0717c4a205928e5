"""Real-time P&L gathered: positions from the broker, latest prices from the Redis cache,
previous closes for what the cache lacks, then :func:`~libs.market_data.pnl.compute.compute_pnl`.

Only the positions are required: if they cannot be read the broker's error is raised. A
Redis that is down, or a snapshots call that fails, is reported in the result and the
affected positions fall back to the previous close or to ``unavailable``
(docs/positions.md, "Where the numbers come from, and when").
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from libs.market_data.broker.caches import PreviousCloseCache, RecentPositions
from libs.market_data.broker.models import Position, PreviousClose
from libs.market_data.exceptions import BrokerAPIError, InvalidSymbolError
from libs.market_data.pnl.compute import PnLReport, PnLTotals, PositionPnL, compute_pnl
from libs.market_data.symbols import normalize_symbol
from libs.market_data.types import PriceData, format_timestamp
from libs.redis_client import RedisClientError

__all__ = ["PnLService", "PriceReader", "RealtimePnL"]

_CACHE_READ_CHUNK: Final = 500  # below PriceCache's per-read limit


class PriceReader(Protocol):
    """Latest cached prices: the cache's read side,
    :class:`~libs.market_data.cache.price_cache.PriceCache`."""

    async def get_many(self, symbols: Iterable[str]) -> dict[str, PriceData | None]: ...


@dataclass(frozen=True, slots=True)
class RealtimePnL:
    """A P&L report with where its inputs came from: what the P&L endpoint answers."""

    report: PnLReport
    as_of: str  # RFC 3339 UTC, when the positions were read
    cache_error: str | None = None  # the price cache could not be read
    closing_prices_error: str | None = None  # the previous closes could not be read

    @property
    def positions(self) -> list[PositionPnL]:
        return self.report.positions

    @property
    def totals(self) -> PnLTotals:
        return self.report.totals


class PnLService:
    """Prices the open positions now; holds no state of its own beyond its sources."""

    def __init__(
        self,
        positions: RecentPositions,
        prices: PriceReader,
        previous_closes: PreviousCloseCache,
    ) -> None:
        self._positions = positions
        self._prices = prices
        self._previous_closes = previous_closes

    async def realtime(self) -> RealtimePnL:
        """Every open position priced, sorted by symbol, with the totals.

        Raises :class:`~libs.market_data.exceptions.BrokerAPIError` when the positions
        cannot be read.
        """
        fetched, read_at = await self._positions.get()
        positions = sorted(fetched, key=lambda p: p.symbol)
        symbols = _lookup_symbols(positions)

        realtime: dict[str, PriceData | None] = {}
        cache_error: str | None = None
        try:
            for start in range(0, len(symbols), _CACHE_READ_CHUNK):
                realtime.update(
                    await self._prices.get_many(symbols[start : start + _CACHE_READ_CHUNK])
                )
        except RedisClientError as exc:
            # Redis down: every position falls back to its previous close rather than failing.
            cache_error = f"price cache unavailable: {exc}"
            realtime = {}

        closing: dict[str, PreviousClose] = {}
        closing_error: str | None = None
        missing = [s for s in symbols if realtime.get(s) is None]
        if missing:
            try:
                closing = await self._previous_closes.get(missing)
            except BrokerAPIError as exc:
                closing_error = str(exc)

        return RealtimePnL(
            report=compute_pnl(positions, realtime, closing, now=time.time()),
            as_of=format_timestamp(datetime.fromtimestamp(read_at, UTC)),
            cache_error=cache_error,
            closing_prices_error=closing_error,
        )


def _lookup_symbols(positions: list[Position]) -> list[str]:
    """The positions' symbols as the cache and the data API know them, once each."""
    symbols: dict[str, None] = {}
    for position in positions:
        try:
            symbols.setdefault(normalize_symbol(position.symbol), None)
        except InvalidSymbolError:
            continue  # not a ticker we can look up: priced as unavailable
    return list(symbols)
