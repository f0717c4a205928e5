"""The broker's records as the rest of the library sees them: positions, previous closes
and latest quotes.

Every number is an exact :class:`~decimal.Decimal`; how they are read off the wire is
:mod:`libs.market_data.broker.wire`'s job, how they are fetched
:mod:`libs.market_data.broker.client`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

import msgspec

__all__ = [
    "LatestQuote",
    "LatestQuotesReader",
    "Position",
    "PositionSide",
    "PositionsReader",
    "PreviousClose",
    "PreviousClosesReader",
]


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """An open position. ``qty`` is signed: negative for a short, as Alpaca reports it.

    The ``cost_basis`` ... ``unrealized_pl`` fields are the broker's own figures, kept for
    reference; real-time P&L is computed from the cache (:mod:`libs.market_data.pnl.compute`).
    """

    symbol: str
    side: PositionSide
    qty: Decimal
    avg_entry_price: Decimal
    asset_class: str = ""
    exchange: str = ""
    asset_id: str = ""
    cost_basis: Decimal | None = None
    market_value: Decimal | None = None
    current_price: Decimal | None = None
    lastday_price: Decimal | None = None
    unrealized_pl: Decimal | None = None


class PreviousClose(msgspec.Struct, frozen=True):
    """The close of the previous daily bar; ``timestamp`` is that bar's start (RFC 3339)."""

    price: Decimal
    timestamp: str


class LatestQuote(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol's latest quote from ``GET /v2/stocks/quotes/latest`` (a stock) or
    ``GET /v1beta3/crypto/{loc}/latest/quotes`` (a crypto pair), exact decimals.

    ``timestamp`` is the exchange time as sent (RFC 3339, nanoseconds); sizes are as on
    the stream: whole shares (``int``) for a stock, the base asset's fractional amount
    (``Decimal``) for a crypto pair, which has no exchange codes. Validation (crossed,
    negative) is the pipeline's job.
    """

    symbol: str
    bid_price: Decimal
    ask_price: Decimal
    bid_size: int | Decimal
    ask_size: int | Decimal
    timestamp: str
    bid_exchange: str | None = None
    ask_exchange: str | None = None


class PositionsReader(Protocol):
    """Anything that can list open positions: the REST client, or a test's stand-in."""

    async def get_positions(self) -> list[Position]: ...


class PreviousClosesReader(Protocol):
    """Anything that can look up previous daily closes: the REST client, or a stand-in."""

    async def get_previous_closes(self, symbols: Iterable[str]) -> dict[str, PreviousClose]: ...


class LatestQuotesReader(Protocol):
    """Anything that can read latest quotes: the REST client, or a test's stand-in."""

    async def get_latest_quotes(self, symbols: Iterable[str]) -> dict[str, LatestQuote]: ...
