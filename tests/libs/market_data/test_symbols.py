from __future__ import annotations

import pytest

from libs.market_data import InvalidSymbolError, normalize_symbol, normalize_symbols


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("aapl", "AAPL"), (" msft ", "MSFT"), ("BRK.B", "BRK.B"), ("btc/usd", "BTC/USD"), ("A", "A")],
)
def test_normalises_tickers(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "AA PL", "AAPL;DROP", "*", ".A", "A" * 21, "ÄPPLE", "price:AAPL", 5, None]
)
def test_refuses_what_is_not_a_ticker(raw: object) -> None:
    with pytest.raises(InvalidSymbolError) as info:
        normalize_symbol(raw)
    assert repr(raw) in str(info.value)


def test_many_symbols_deduplicated_in_order() -> None:
    assert normalize_symbols(["msft", "AAPL", "aapl", "MSFT", "goog"]) == ["MSFT", "AAPL", "GOOG"]


@pytest.mark.parametrize(
    "raw", ["\u0131bm", "\u017fpy", "\ufb00", "AAPL\u0131", "\u3000AAPL"], ids=repr
)
def test_non_ascii_that_upper_cases_to_a_ticker_is_refused(raw: str) -> None:
    # str.upper() maps dotless i to I, long s to S, the ff ligature to FF: without an ASCII
    # check first, "\u0131bm" would subscribe IBM.
    with pytest.raises(InvalidSymbolError):
        normalize_symbol(raw)
