"""Positions read from mappings and from a JSON file: exact numbers, every mistake named."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from apps.simulator.positions import load_positions, parse_positions


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({"qty": "1", "avg_entry_price": "1"}, "symbol"),
        ({"symbol": "A B", "qty": "1", "avg_entry_price": "1"}, "symbol"),
        ({"symbol": "A", "avg_entry_price": "1"}, "'qty' is missing"),
        ({"symbol": "A", "qty": 1.5, "avg_entry_price": "1"}, "not a float"),
        ({"symbol": "A", "qty": "abc", "avg_entry_price": "1"}, "not a decimal"),
        ({"symbol": "A", "qty": "0", "avg_entry_price": "1"}, "qty is 0"),
        ({"symbol": "A", "qty": "1", "avg_entry_price": "-1"}, "negative"),
        ({"symbol": "A", "qty": "1", "avg_entry_price": "Infinity"}, "finite"),
        ({"symbol": "A", "qty": "-1", "side": "long", "avg_entry_price": "1"}, "side 'long'"),
        ({"symbol": "A", "qty": "1", "side": "up", "avg_entry_price": "1"}, "side must be"),
        (
            {"symbol": "XYZ", "qty": "1", "avg_entry_price": "1", "asset_class": "crypto"},
            "crypto symbol ends with",
        ),
    ],
)
def test_bad_positions_are_refused_naming_the_problem(item: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_positions([item])


def test_duplicate_symbols_are_refused() -> None:
    entry = {"symbol": "A", "qty": "1", "avg_entry_price": "1"}
    with pytest.raises(ValueError, match="more than one position for A"):
        parse_positions([entry, {**entry, "symbol": "a"}])


def test_positions_file_numbers_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "positions.json"
    path.write_text('{"positions": [{"symbol": "AAPL", "qty": 10, "avg_entry_price": 187.10}]}')
    (position,) = load_positions(path)
    assert position.qty == Decimal(10)
    assert str(position.avg_entry_price) == "187.10"
    path.write_text("[1, 2")
    with pytest.raises(ValueError, match="not JSON"):
        load_positions(path)
    with pytest.raises(ValueError, match="cannot read positions file"):
        load_positions(tmp_path / "missing.json")
    path.write_text('{"nope": []}')
    with pytest.raises(ValueError, match="expected an array"):
        load_positions(path)


def test_a_crypto_position_is_reported_as_the_trading_api_names_it() -> None:
    given = [
        {"symbol": "btc/usd", "qty": "0.000123456789", "avg_entry_price": "60000"},
        {"symbol": "ETHUSDT", "qty": "-2", "avg_entry_price": "3000", "asset_class": "crypto"},
        {"symbol": "AAPL", "qty": "1", "avg_entry_price": "100"},
    ]
    by_symbol = {p.symbol: p for p in parse_positions(given)}
    btc, eth, aapl = by_symbol["BTCUSD"], by_symbol["ETHUSDT"], by_symbol["AAPL"]
    assert (btc.symbol, btc.pair, btc.quote_symbol, btc.asset_class, btc.exchange) == (
        "BTCUSD", "BTC/USD", "BTC/USD", "crypto", "CRYPTO")  # fmt: skip
    assert btc.qty == Decimal("0.000123456789")
    assert (eth.symbol, eth.pair, eth.qty) == ("ETHUSDT", "ETH/USDT", Decimal("-2"))
    assert (aapl.pair, aapl.quote_symbol, aapl.exchange) == (None, "AAPL", "NASDAQ")
    with pytest.raises(ValueError, match="more than one position for BTCUSD"):
        parse_positions([given[0], {**given[0], "symbol": "BTCUSD", "asset_class": "crypto"}])
