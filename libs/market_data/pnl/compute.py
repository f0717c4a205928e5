"""Real-time unrealized P&L of positions: pure computation, no I/O.

Definitions (``qty`` is signed, negative for a short, as Alpaca reports it):

- ``cost_basis = qty * avg_entry_price`` and ``market_value = qty * current_price``
  (both negative for a short, as on Alpaca's positions);
- ``unrealized_pl = market_value - cost_basis = qty * (current - entry)``, so a short
  earns ``(entry - current) * |qty|``;
- ``unrealized_pl_pct = unrealized_pl / |cost_basis| * 100`` (a percent, not Alpaca's
  fraction).

Rounding: everything is computed exactly, then rounded once for display with
``ROUND_HALF_EVEN`` (banker's rounding: no upward bias over many positions): money to
the cent, percents to :data:`PERCENT_PLACES` decimals. Prices are shown unrounded (a
mid can have a half cent). Totals are sums of the exact values rounded once, so they
can differ by a cent from the sum of the rounded rows. Totals cover priced positions
only; the percent of the totals is over the gross exposure ``sum(|cost_basis|)``.

Records in (positions, cached prices, previous closes), records out: gathering them is
:mod:`libs.market_data.pnl.service`'s job.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum
from typing import Final

import msgspec

from libs.market_data.broker.models import Position, PositionSide, PreviousClose
from libs.market_data.types import PriceData

__all__ = [
    "CENT",
    "PERCENT_PLACES",
    "PnLReport",
    "PnLTotals",
    "PositionPnL",
    "PriceSource",
    "compute_pnl",
    "round_money",
    "round_percent",
]

CENT: Final = Decimal("0.01")
PERCENT_PLACES: Final = Decimal("0.0001")
_HUNDRED: Final = Decimal(100)
_ZERO: Final = Decimal(0)
# Far above any product of a price and a quantity: nothing here is rounded by the context.
_PRECISION: Final = 50


class PriceSource(StrEnum):
    """Where a position's current price came from."""

    REALTIME = "realtime"  # the mid of the latest quote in the Redis cache
    CLOSING = "closing"  # the previous daily close, when the cache has no price
    UNAVAILABLE = "unavailable"  # neither: the position is left out of the totals


def round_money(value: Decimal) -> Decimal:
    """To the cent, half to even."""
    rounded = value.quantize(CENT, rounding=ROUND_HALF_EVEN)
    return rounded if rounded else abs(rounded)  # never "-0.00"


def round_percent(value: Decimal) -> Decimal:
    """To :data:`PERCENT_PLACES`, half to even."""
    rounded = value.quantize(PERCENT_PLACES, rounding=ROUND_HALF_EVEN)
    return rounded if rounded else abs(rounded)


@dataclass(frozen=True, slots=True)
class PositionPnL:
    symbol: str
    side: PositionSide
    qty: Decimal
    avg_entry_price: Decimal
    current_price: Decimal | None
    price_source: PriceSource
    price_timestamp: str | None  # the quote's time, or the previous daily bar's start
    price_age_seconds: float | None  # realtime prices only
    cost_basis: Decimal
    market_value: Decimal | None
    unrealized_pl: Decimal | None
    unrealized_pl_pct: Decimal | None


@dataclass(frozen=True, slots=True)
class PnLTotals:
    positions: int
    priced_positions: int
    total_cost_basis: Decimal
    total_market_value: Decimal
    total_unrealized_pl: Decimal
    total_unrealized_pl_pct: Decimal | None


@dataclass(frozen=True, slots=True)
class PnLReport:
    positions: list[PositionPnL]
    totals: PnLTotals


def _percent(part: Decimal, whole: Decimal) -> Decimal | None:
    return None if whole == 0 else round_percent(part / abs(whole) * _HUNDRED)


def _age_seconds(timestamp: str, now: float) -> float:
    """Seconds from an RFC 3339 exchange time to ``now``, to the millisecond; a quote
    stamped in the future (clock skew) is 0 old, never negative."""
    stamp = msgspec.convert(timestamp, datetime)
    return round(max(0.0, now - stamp.timestamp()), 3)


def compute_pnl(
    positions: Iterable[Position],
    realtime: Mapping[str, PriceData | None],
    closing: Mapping[str, PreviousClose],
    *,
    now: float | None = None,
) -> PnLReport:
    """Price every position (cache first, then the previous close) and add them up.

    ``realtime`` maps symbols to their cached price (``None`` or absent: not cached);
    ``closing`` maps symbols to their previous close. ``now`` (epoch seconds) dates the
    ages; the current time when not given (callers wanting a repeatable result pass it).
    """
    if now is None:
        now = time.time()
    rows: list[PositionPnL] = []
    total_cost = total_value = gross = _ZERO
    count = priced = 0
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        for position in positions:
            count += 1
            cached = realtime.get(position.symbol)
            previous = closing.get(position.symbol)
            timestamp: str | None = None
            age: float | None = None
            price: Decimal | None
            if cached is not None:
                source, price, timestamp = PriceSource.REALTIME, cached.mid, cached.timestamp
                age = _age_seconds(cached.timestamp, now)
            elif previous is not None:
                source, price, timestamp = PriceSource.CLOSING, previous.price, previous.timestamp
            else:
                source, price = PriceSource.UNAVAILABLE, None
            cost = position.qty * position.avg_entry_price
            value = pl = pct = None
            if price is not None:
                exact_value = position.qty * price
                exact_pl = exact_value - cost
                value, pl = round_money(exact_value), round_money(exact_pl)
                pct = _percent(exact_pl, cost)
                priced += 1
                total_cost += cost
                total_value += exact_value
                gross += abs(cost)
            rows.append(
                PositionPnL(
                    symbol=position.symbol,
                    side=position.side,
                    qty=position.qty,
                    avg_entry_price=position.avg_entry_price,
                    current_price=price,
                    price_source=source,
                    price_timestamp=timestamp,
                    price_age_seconds=age,
                    cost_basis=round_money(cost),
                    market_value=value,
                    unrealized_pl=pl,
                    unrealized_pl_pct=pct,
                )
            )
        total_pl = total_value - total_cost
        totals = PnLTotals(
            positions=count,
            priced_positions=priced,
            total_cost_basis=round_money(total_cost),
            total_market_value=round_money(total_value),
            total_unrealized_pl=round_money(total_pl),
            total_unrealized_pl_pct=_percent(total_pl, gross),
        )
    return PnLReport(positions=rows, totals=totals)
