"""Reading the stream's frames for ``market-data watch`` (pure: no socket)."""

from __future__ import annotations

import json
from decimal import Decimal

from apps.market_data_service.cli.board import (
    CoalescedMessage,
    NoticeMessage,
    PriceMessage,
    Quote,
    ResyncMessage,
)
from apps.market_data_service.cli.watch_feeds import parse_frame, stream_url

DATA = {
    "symbol": "AAPL", "bid": "150.10", "ask": "150.13", "mid": "150.115", "bid_size": 3,
    "ask_size": 4, "timestamp": "2026-03-02T14:30:00.1Z", "seq": 7, "epoch": "e1",
}  # fmt: skip
QUOTE = Quote(
    "AAPL", Decimal("150.10"), Decimal("150.13"), Decimal("150.115"), Decimal(3), Decimal(4),
    "2026-03-02T14:30:00.1Z", 7, "e1",
)  # fmt: skip


def test_the_stream_url_follows_the_api_url() -> None:
    assert stream_url("http://127.0.0.1:8004") == "ws://127.0.0.1:8004/api/v1/stream"
    assert stream_url("https://md.example:443/base") == "wss://md.example:443/base/api/v1/stream"


def test_one_message_or_an_array_of_them_per_frame() -> None:
    assert parse_frame(json.dumps({"type": "price", "data": DATA})) == [PriceMessage(QUOTE)]
    frame = json.dumps([
        {"type": "snapshot", "symbol": "AAPL", "data": DATA},
        {"type": "resync", "symbols": ["AAPL", "MSFT"], "reason": "notice:stream.reconnected"},
        {"type": "snapshot", "symbol": "MSFT", "data": None},
    ])  # fmt: skip
    assert parse_frame(frame.encode()) == [
        PriceMessage(QUOTE, snapshot=True),
        ResyncMessage(("AAPL", "MSFT"), "notice:stream.reconnected"),
        NoticeMessage("MSFT: no cached price yet"),
    ]


def test_prices_stay_exact_even_as_json_numbers() -> None:
    frame = (
        '{"type":"price","data":{"symbol":"AAPL","bid":150.10,"ask":150.13,"bid_size":1,'
        '"ask_size":1,"timestamp":"2026-03-02T14:30:00Z","seq":"7","epoch":"e1"}}'
    )
    (message,) = parse_frame(frame)
    assert isinstance(message, PriceMessage)
    assert str(message.quote.bid) == "150.10" and message.quote.seq == 7
    assert str(message.quote.mid) == "150.115"  # no mid sent: the exact midpoint


def test_sizes_are_exact_decimals_whole_or_fractional() -> None:
    crypto = DATA | {"symbol": "BTC/USD", "bid_size": "0.00012345", "ask_size": "1.5"}
    bad_sizes = DATA | {"bid_size": "-1", "ask_size": "x"}
    frame = json.dumps([{"type": "price", "data": DATA | {"bid_size": "3"}},
                        {"type": "price", "data": crypto},
                        {"type": "price", "data": bad_sizes}])  # fmt: skip
    stock, btc, bad = parse_frame(frame)
    assert isinstance(stock, PriceMessage) and isinstance(btc, PriceMessage)
    assert stock == PriceMessage(QUOTE)  # "3" and 3 read the same
    assert (btc.quote.bid_size, btc.quote.ask_size) == (Decimal("0.00012345"), Decimal("1.5"))
    assert str(btc.quote.bid_size) == "0.00012345"
    assert isinstance(bad, PriceMessage)  # the price still shows; a bad size shows as 0
    assert (bad.quote.bid_size, bad.quote.ask_size) == (Decimal(0), Decimal(0))


def test_the_services_other_messages_become_notices() -> None:
    frame = json.dumps([
        {"type": "error", "message": "unknown action 'x'"},
        {"type": "coalesced", "replaced": 12, "symbols": ["AAPL"]},
        {"type": "subscriptions", "symbols": ["AAPL"]},
        {"type": "hello", "v": 2},
    ])  # fmt: skip
    assert parse_frame(frame) == [
        NoticeMessage("the service says: unknown action 'x'", error=True),
        CoalescedMessage(12, ("AAPL",)),
        NoticeMessage("subscribed: AAPL"),
        NoticeMessage('hello: {"type":"hello","v":2}'),
    ]


def test_bad_frames_are_error_notices_never_exceptions() -> None:
    for frame in ("not json", b"\xff\xfe", "[1, null]", '{"type":"price","data":{"symbol":"A"}}'):
        messages = parse_frame(frame)
        assert messages and all(isinstance(m, NoticeMessage) and m.error for m in messages), frame
    (message,) = parse_frame(json.dumps({"type": "price", "data": {**DATA, "bid": "NaN"}}))
    assert isinstance(message, NoticeMessage) and message.error
