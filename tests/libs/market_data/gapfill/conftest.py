"""The ``make_stream`` fixture of the gap-fill tests (tests/libs/market_data/gapfill/fills.py)."""

from tests.libs.market_data.gapfill.fills import make_stream

__all__ = ["make_stream"]
