"""Real-time P&L arithmetic: hand computations to the cent, long and short, rounding,
the closing-price fallback and the totals. Pure: no I/O."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

from libs.market_data.broker.models import Position, PositionSide, PreviousClose
from libs.market_data.pnl import compute as pnl_compute
from libs.market_data.pnl.compute import PriceSource, compute_pnl, round_money, round_percent
from libs.market_data.types import PriceData

NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def price(symbol: str, bid: str, ask: str, timestamp: str = "2026-05-28T20:26:38.5Z") -> PriceData:
    b, a = Decimal(bid), Decimal(ask)
    return PriceData(
        symbol=symbol, bid=b, ask=a, mid=(b + a) / 2, bid_size=1, ask_size=1, timestamp=timestamp
    )


def long(symbol: str, qty: str, entry: str) -> Position:
    return Position(
        symbol=symbol, side=PositionSide.LONG, qty=Decimal(qty), avg_entry_price=Decimal(entry)
    )


def short(symbol: str, qty: str, entry: str) -> Position:
    return Position(
        symbol=symbol, side=PositionSide.SHORT, qty=-Decimal(qty), avg_entry_price=Decimal(entry)
    )


def test_long_position_matches_a_hand_computation_to_the_cent() -> None:
    # 7 @ 100.123, mid (101.00 + 101.01) / 2 = 101.005
    # cost 7 * 100.123 = 700.861 -> 700.86; value 7 * 101.005 = 707.035 -> 707.04 (half even)
    # P&L 707.035 - 700.861 = 6.174 -> 6.17; % 6.174 / 700.861 * 100 = 0.880916... -> 0.8809
    report = compute_pnl(
        [long("AAPL", "7", "100.123")], {"AAPL": price("AAPL", "101.00", "101.01")}, {}, now=NOW
    )
    (row,) = report.positions
    assert row.price_source is PriceSource.REALTIME
    assert row.current_price == Decimal("101.005")
    assert row.cost_basis == Decimal("700.86")
    assert row.market_value == Decimal("707.04")
    assert row.unrealized_pl == Decimal("6.17")
    assert row.unrealized_pl_pct == Decimal("0.8809")
    assert row.price_age_seconds == 1.5
    assert row.price_timestamp == "2026-05-28T20:26:38.5Z"


def test_short_position_earns_when_the_price_falls() -> None:
    # Short 5 @ 300.00, mid (290.99 + 291.00) / 2 = 290.995
    # P&L (entry - current) * |qty| = (300.00 - 290.995) * 5 = 45.025 -> 45.02 (half even)
    # value -5 * 290.995 = -1454.975 -> -1454.98; cost -1500.00; % 45.025 / 1500 = 3.0017
    report = compute_pnl(
        [short("MSFT", "5", "300.00")], {"MSFT": price("MSFT", "290.99", "291.00")}, {}, now=NOW
    )
    (row,) = report.positions
    assert row.side is PositionSide.SHORT
    assert row.qty == Decimal("-5")
    assert row.cost_basis == Decimal("-1500.00")
    assert row.market_value == Decimal("-1454.98")
    assert row.unrealized_pl == Decimal("45.02")
    assert row.unrealized_pl_pct == Decimal("3.0017")


def test_short_position_loses_when_the_price_rises() -> None:
    # (100.00 - 110.50) * 3 = -31.50
    report = compute_pnl(
        [short("TSLA", "3", "100.00")], {"TSLA": price("TSLA", "110.50", "110.50")}, {}, now=NOW
    )
    assert report.positions[0].unrealized_pl == Decimal("-31.50")
    assert report.positions[0].unrealized_pl_pct == Decimal("-10.5000")


def test_fractional_quantities_stay_exact() -> None:
    # 0.5 @ 187.33 -> cost 93.665 -> 93.66 (half even); mid 190.10 -> value 95.05; P&L 1.385 -> 1.38
    report = compute_pnl(
        [long("AAPL", "0.5", "187.33")], {"AAPL": price("AAPL", "190.10", "190.10")}, {}, now=NOW
    )
    row = report.positions[0]
    assert (row.cost_basis, row.market_value, row.unrealized_pl) == (
        Decimal("93.66"),
        Decimal("95.05"),
        Decimal("1.38"),
    )


def test_closing_price_when_the_cache_has_none_and_unavailable_when_neither() -> None:
    closes = {"GOOGL": PreviousClose(Decimal("140.25"), "2026-05-27T04:00:00Z")}
    report = compute_pnl(
        [long("GOOGL", "10", "150.00"), long("NVDA", "2", "900")],
        {"GOOGL": None},
        closes,
        now=NOW,
    )
    closing, missing = report.positions
    assert closing.price_source is PriceSource.CLOSING
    assert closing.current_price == Decimal("140.25")
    assert closing.price_timestamp == "2026-05-27T04:00:00Z"
    assert closing.price_age_seconds is None
    assert closing.unrealized_pl == Decimal("-97.50")  # (140.25 - 150.00) * 10
    assert missing.price_source is PriceSource.UNAVAILABLE
    assert missing.current_price is None
    assert missing.market_value is missing.unrealized_pl is missing.unrealized_pl_pct is None
    assert missing.cost_basis == Decimal("1800.00")
    # The unpriced position is left out of the totals.
    totals = report.totals
    assert (totals.positions, totals.priced_positions) == (2, 1)
    assert totals.total_cost_basis == Decimal("1500.00")
    assert totals.total_unrealized_pl == Decimal("-97.50")


def test_realtime_price_wins_over_the_closing_price() -> None:
    closes = {"AAPL": PreviousClose(Decimal("1.00"), "2026-05-27T04:00:00Z")}
    report = compute_pnl(
        [long("AAPL", "1", "100")], {"AAPL": price("AAPL", "101", "101")}, closes, now=NOW
    )
    assert report.positions[0].price_source is PriceSource.REALTIME
    assert report.positions[0].current_price == Decimal("101")


def test_totals_are_exact_sums_rounded_once() -> None:
    positions = [long("AAPL", "7", "100.123"), short("MSFT", "5", "300.00")]
    prices = {"AAPL": price("AAPL", "101.00", "101.01"), "MSFT": price("MSFT", "290.99", "291.00")}
    totals = compute_pnl(positions, prices, {}, now=NOW).totals
    # cost 700.861 - 1500 = -799.139; value 707.035 - 1454.975 = -747.94
    # P&L 6.174 + 45.025 = 51.199 -> 51.20 (the rounded rows would add to 6.17 + 45.02 = 51.19)
    # % over gross exposure 700.861 + 1500 = 2200.861: 51.199 / 2200.861 * 100 = 2.32632...
    assert totals.total_cost_basis == Decimal("-799.14")
    assert totals.total_market_value == Decimal("-747.94")
    assert totals.total_unrealized_pl == Decimal("51.20")
    assert totals.total_unrealized_pl_pct == Decimal("2.3263")
    assert (totals.positions, totals.priced_positions) == (2, 2)


def test_every_number_is_a_decimal_never_a_float() -> None:
    report = compute_pnl(
        [short("MSFT", "5", "300.00")], {"MSFT": price("MSFT", "290.99", "291.00")}, {}, now=NOW
    )
    row = report.positions[0]
    for value in (
        row.qty,
        row.avg_entry_price,
        row.current_price,
        row.cost_basis,
        row.market_value,
        row.unrealized_pl,
        row.unrealized_pl_pct,
        report.totals.total_cost_basis,
        report.totals.total_market_value,
        report.totals.total_unrealized_pl,
        report.totals.total_unrealized_pl_pct,
    ):
        assert type(value) is Decimal, value


def test_no_positions_gives_zero_totals_and_no_percent() -> None:
    totals = compute_pnl([], {}, {}, now=NOW).totals
    assert (totals.total_cost_basis, totals.total_unrealized_pl) == (
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert str(totals.total_market_value) == "0.00"
    assert totals.total_unrealized_pl_pct is None


def test_rounding_is_half_even_and_never_negative_zero() -> None:
    assert round_money(Decimal("2.345")) == Decimal("2.34")
    assert round_money(Decimal("2.355")) == Decimal("2.36")
    assert round_money(Decimal("-2.345")) == Decimal("-2.34")
    assert str(round_money(Decimal("-0.004"))) == "0.00"
    assert round_percent(Decimal("1.23455")) == Decimal("1.2346")
    assert str(round_percent(Decimal("-0.00001"))) == "0.0000"


def test_a_future_quote_time_has_age_zero() -> None:
    report = compute_pnl(
        [long("AAPL", "1", "1")],
        {"AAPL": price("AAPL", "2", "2", timestamp="2026-05-28T20:30:00Z")},
        {},
        now=NOW,
    )
    assert report.positions[0].price_age_seconds == 0.0


def test_the_arithmetic_imports_records_only_never_io() -> None:
    # compute.py stays pure: records in, records out; the gathering (Redis, the broker's
    # HTTP) is pnl/service.py's. Its library imports are the record modules only.
    source = Path(pnl_compute.__file__).read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("libs.")
    }
    imported |= {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("libs.")
    }
    assert imported == {"libs.market_data.broker.models", "libs.market_data.types"}
