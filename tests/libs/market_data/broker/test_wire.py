"""Decoding Alpaca's REST answers: exact decimals from strings and JSON numbers alike,
both short conventions, and malformed bodies refused as a response error."""

from __future__ import annotations

from decimal import Decimal

import pytest

from libs.market_data import BrokerResponseError
from libs.market_data.broker import PositionSide, PreviousClose, decode_positions
from libs.market_data.broker.wire import decode_error, decode_previous_closes


def test_both_short_conventions_decode_to_a_negative_qty() -> None:
    body = (
        b'[{"symbol":"A","qty":"-3","side":"short","avg_entry_price":"10.5"},'
        b'{"symbol":"B","qty":"3","side":"short","avg_entry_price":"10.5"},'
        b'{"symbol":"C","qty":"-3","side":"long","avg_entry_price":"10.5"},'
        b'{"symbol":"D","qty":3,"side":"LONG","avg_entry_price":10.50,"extra":{"x":1}}]'
    )
    a, b, c, d = decode_positions(body)
    assert (a.side, a.qty) == (PositionSide.SHORT, Decimal("-3"))
    assert (b.side, b.qty) == (PositionSide.SHORT, Decimal("-3"))
    assert (c.side, c.qty) == (PositionSide.SHORT, Decimal("-3"))  # the sign wins
    # JSON numbers are read from their text too, never through a float.
    assert (d.side, d.qty, str(d.avg_entry_price)) == (PositionSide.LONG, Decimal(3), "10.50")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"symbol":"A"}',
        b'[{"symbol":"A","qty":"x","side":"long","avg_entry_price":"1"}]',
        b'[{"symbol":"A","qty":"NaN","side":"long","avg_entry_price":"1"}]',
        b'[{"symbol":"A","qty":"1","side":"sideways","avg_entry_price":"1"}]',
        b'[{"symbol":"A","qty":"1","side":"long","avg_entry_price":"-1"}]',
        b'[{"symbol":"A","side":"long","avg_entry_price":"1"}]',
    ],
)
def test_unreadable_positions_are_a_response_error(body: bytes) -> None:
    with pytest.raises(BrokerResponseError, match="GET /v2/positions"):
        decode_positions(body)


def test_previous_closes_keep_only_positive_finite_closes() -> None:
    body = (
        b'{"AAPL":{"prevDailyBar":{"c":187.1234567890123456789,"t":"2026-05-27T04:00:00Z"}},'
        b'"ZERO":{"prevDailyBar":{"c":0,"t":"x"}},"NEG":{"prevDailyBar":{"c":-1.5}},'
        b'"NOBAR":{"latestQuote":{"bp":1}},"NULL":null}'
    )
    closes = decode_previous_closes(body, "GET /v2/stocks/snapshots")
    assert closes == {
        "AAPL": PreviousClose(Decimal("187.1234567890123456789"), "2026-05-27T04:00:00Z")
    }


def test_unreadable_snapshots_are_a_response_error_naming_the_request() -> None:
    with pytest.raises(BrokerResponseError, match="GET /v2/stocks/snapshots: unreadable"):
        decode_previous_closes(b'["AAPL"]', "GET /v2/stocks/snapshots")


def test_error_bodies_are_read_when_they_are_alpacas() -> None:
    assert decode_error(b'{"code":40110000,"message":"request is not authorized"}') == (
        40110000,
        "request is not authorized",
    )
    assert decode_error(b"<html>bad gateway</html>") is None
