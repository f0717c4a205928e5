"""Real-time P&L of open positions (docs/positions.md).

- :mod:`~libs.market_data.pnl.compute`: the exact arithmetic and rounding, records in,
  records out;
- :mod:`~libs.market_data.pnl.service`: gathers positions, cached prices and previous
  closes, and computes.
"""

from libs.market_data.pnl.compute import (
    CENT,
    PERCENT_PLACES,
    PnLReport,
    PnLTotals,
    PositionPnL,
    PriceSource,
    compute_pnl,
    round_money,
    round_percent,
)
from libs.market_data.pnl.service import PnLService, PriceReader, RealtimePnL

__all__ = [
    "CENT",
    "PERCENT_PLACES",
    "PnLReport",
    "PnLService",
    "PnLTotals",
    "PositionPnL",
    "PriceReader",
    "PriceSource",
    "RealtimePnL",
    "compute_pnl",
    "round_money",
    "round_percent",
]
