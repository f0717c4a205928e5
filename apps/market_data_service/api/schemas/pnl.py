"""Bodies of the real-time P&L (docs/positions.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    Field,
)

from apps.market_data_service.api.schemas.common import (
    DecimalString,
)

__all__ = ["PositionPnLItem", "RealtimePnLResponse", "RealtimePnLTotals"]


# The HTTP shapes of the library's records (PositionSyncStatus, PositionPnL, PnLTotals,
# RealtimePnL), filled from them by attribute name: the field lists here are the API
# contract and its OpenAPI document, and test_positions_api.py holds them to the records.


class PositionPnLItem(BaseModel):
    """One position priced now. Decimals travel as exact strings; ``qty``, ``cost_basis``
    and ``market_value`` are negative for a short."""

    symbol: str = Field(description="The ticker.", examples=["AAPL"])
    side: Literal["long", "short"] = Field(description="Long or short.", examples=["long"])
    qty: DecimalString = Field(description="Quantity, negative for a short.", examples=["10"])
    avg_entry_price: DecimalString = Field(description="Average entry price.", examples=["187.50"])
    current_price: DecimalString | None = Field(
        description="The price used: cached mid (realtime) or previous close (closing).",
        examples=["190.25"],
    )
    price_source: Literal["realtime", "closing", "unavailable"] = Field(
        description="Where current_price comes from.", examples=["realtime"]
    )
    price_timestamp: str | None = Field(
        description="The quote's time (realtime) or the previous daily bar's start (closing).",
        examples=["2024-07-24T07:56:53.639713735Z"],
    )
    price_age_seconds: float | None = Field(
        description="Age of a realtime price in seconds; null otherwise.", examples=[0.42]
    )
    cost_basis: DecimalString = Field(
        description="qty x avg_entry_price, to the cent.", examples=["1875.00"]
    )
    market_value: DecimalString | None = Field(
        description="qty x current_price, to the cent.", examples=["1902.50"]
    )
    unrealized_pl: DecimalString | None = Field(
        description="market_value - cost_basis (a short earns when the price falls).",
        examples=["27.50"],
    )
    unrealized_pl_pct: DecimalString | None = Field(
        description="unrealized_pl as a percent of |cost_basis|, 4 places.", examples=["1.4667"]
    )


class RealtimePnLTotals(BaseModel):
    """Sums over the priced positions (the unavailable ones are left out)."""

    positions: int = Field(description="Open positions.", examples=[2])
    priced_positions: int = Field(description="Positions with a price.", examples=[2])
    total_cost_basis: DecimalString = Field(
        description="Sum of cost_basis, to the cent.", examples=["3375.00"]
    )
    total_market_value: DecimalString = Field(
        description="Sum of market_value, to the cent.", examples=["3402.50"]
    )
    total_unrealized_pl: DecimalString = Field(
        description="Sum of unrealized_pl, to the cent.", examples=["27.50"]
    )
    total_unrealized_pl_pct: DecimalString | None = Field(
        description="total_unrealized_pl as a percent of the gross sum of |cost_basis|.",
        examples=["0.8148"],
    )


class RealtimePnLResponse(BaseModel):
    """Open positions priced from the cache, and their totals."""

    positions: list[PositionPnLItem] = Field(description="Each open position, priced.")
    totals: RealtimePnLTotals = Field(description="Sums over the priced positions.")
    as_of: str = Field(
        description="When the positions were read, RFC 3339 UTC.",
        examples=["2024-07-24T07:57:00.123Z"],
    )
    cache_error: str | None = Field(
        default=None,
        description="Set when reading cached prices failed (those positions fall back).",
    )
    closing_prices_error: str | None = Field(
        default=None,
        description="Set when reading previous closes failed (those show `unavailable`).",
    )
