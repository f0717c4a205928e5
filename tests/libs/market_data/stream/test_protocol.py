"""The Alpaca wire layer against the reference's conformance vectors, and bad frames."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from libs.market_data.stream.protocol import (
    ErrorMessage,
    SubscriptionAck,
    SuccessMessage,
    decode_frame,
    encode_auth,
    encode_subscription,
)

# Frames as Alpaca documents them (docs/concepts/websocket-streaming.md).
V1 = b'[{"T":"success","msg":"connected"}]'
V3 = b'[{"T":"error","code":402,"msg":"auth failed"}]'
V11 = (
    b'[{"T":"subscription","trades":["AAPL"],"quotes":["AMD","CLDR"],"bars":["*"],'
    b'"updatedBars":[],"dailyBars":["VOO"],"statuses":["*"],"lulds":[],'
    b'"corrections":["AAPL"],"cancelErrors":["AAPL"]}]'
)
V12 = b'[{"T":"subscription","trades":[],"quotes":["FAKEPACA"],"bars":["FAKEPACA"]}]'
V14 = (
    b'[{"T":"q","S":"FAKEPACA","bx":"O","bp":133.85,"bs":4,"ax":"R","ap":135.77,"as":5,'
    b'"c":["R"],"z":"A","t":"2024-07-24T07:56:53.639713735Z"}]'
)
V15 = (
    b'[{"T":"t","S":"AAPL","i":628,"x":"K","p":162.92,"s":3,"c":["@","F","T","I"],"z":"C",'
    b'"t":"2023-04-06T11:54:26.838232225Z"},{"T":"t","S":"AAPL","i":75,"x":"Z","p":162.92,'
    b'"s":3,"c":["@"],"z":"C","t":"2023-04-06T11:54:26.838562809Z"}]'
)
# Vector 21: a mixed batch whose old-style bar breaks alpaca-py; the quote must survive.
V21 = (
    b'[{"T":"t","S":"FAKEPACA","i":96921,"x":"D","p":126.55,"s":1,"c":["@","I"],"z":"C",'
    b'"t":"2024-07-24T07:56:53Z"},{"T":"b","S":"FAKEPACA","o":132.65,"h":136,"l":132.12,'
    b'"c":134.65,"v":205,"t":"2024-07-24T07:56:00Z"},{"T":"q","S":"FAKEPACA","bx":"O",'
    b'"bp":1.0,"bs":1,"ax":"R","ap":2.0,"as":1,"c":["R"],"z":"A","t":"2024-07-24T07:56:54Z"}]'
)


def test_greeting() -> None:
    assert decode_frame(V1).controls == [SuccessMessage(msg="connected")]


def test_error_frame() -> None:
    assert decode_frame(V3).controls == [ErrorMessage(code=402, msg="auth failed")]


@pytest.mark.parametrize(("frame", "quotes"), [(V11, ["AMD", "CLDR"]), (V12, ["FAKEPACA"])])
def test_subscription_acks(frame: bytes, quotes: list[str]) -> None:
    (ack,) = decode_frame(frame).controls
    assert isinstance(ack, SubscriptionAck)
    assert ack.quotes == quotes


def test_quote_prices_are_exact_decimals_from_the_text() -> None:
    (q,) = decode_frame(V14).quotes
    assert (q.S, q.bp, q.ap, q.bs, q.as_) == (
        "FAKEPACA",
        Decimal("133.85"),
        Decimal("135.77"),
        4,
        5,
    )
    assert type(q.bp) is Decimal
    assert q.t == "2024-07-24T07:56:53.639713735Z"  # nanoseconds kept
    assert (q.bx, q.ax) == ("O", "R")


def test_text_frames_decode_like_bytes() -> None:
    assert decode_frame(V14.decode()).quotes == decode_frame(V14).quotes


def test_trailing_zeros_survive() -> None:
    frame = b'[{"T":"q","S":"A","bp":150.10,"bs":1,"ap":150.20,"as":1,"t":"2024-01-01T00:00:00Z"}]'
    (q,) = decode_frame(frame).quotes
    assert str(q.bp) == "150.10"


def test_trades_decode_with_exact_prices_and_ids() -> None:
    frame = decode_frame(V15)
    assert (frame.quotes, frame.other, frame.malformed) == ([], 0, 0)
    first, second = frame.trades
    assert (first.S, first.p, first.s, first.i, first.x, first.z) == (
        "AAPL", Decimal("162.92"), 3, 628, "K", "C"
    )  # fmt: skip
    assert first.c == ["@", "F", "T", "I"]
    assert first.t == "2023-04-06T11:54:26.838232225Z"
    assert second.i == 75


def test_other_market_data_is_counted_not_malformed() -> None:
    status = (
        b'[{"T":"s","S":"AAPL","sc":"H","sm":"Trading Halt","rc":"T12","rm":"",'
        b'"t":"2021-02-22T19:15:00Z","z":"C"},{"T":"d","S":"AAPL","o":1,"h":1,"l":1,"c":1,'
        b'"v":1,"t":"2021-02-22T19:15:00Z"}]'
    )
    frame = decode_frame(status)
    assert (frame.quotes, frame.trades, frame.bars, frame.other, frame.malformed) == (
        [], [], [], 2, 0
    )  # fmt: skip


def test_one_bad_element_does_not_lose_the_rest_of_the_batch() -> None:
    # The old-style bar (no n, vw) decodes too: every element stands on its own.
    frame = decode_frame(V21)
    assert [q.S for q in frame.quotes] == ["FAKEPACA"]
    assert [t.p for t in frame.trades] == [Decimal("126.55")]
    assert [(b.h, b.n, b.vw) for b in frame.bars] == [(Decimal("136"), 0, None)]
    assert frame.other == 0
    assert frame.malformed == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"T": "q", "S": "A", "bp": "abc", "bs": 1, "ap": 2, "as": 1, "t": "2024-01-01T00:00:00Z"},
        {"T": "q", "S": "A", "bp": 1, "bs": 1.5, "ap": 2, "as": 1, "t": "2024-01-01T00:00:00Z"},
        {"T": "q", "S": "A", "bp": 1, "bs": 1, "ap": 2, "as": 1, "t": "yesterday"},
        {"T": "q", "S": "A", "bp": 1, "bs": 1, "ap": 2, "as": 1, "t": "2024-01-01T00:00:00" * 3},
        {"T": "q", "S": "A", "bp": 1, "bs": 1, "ap": 2, "as": 1},
        {"T": "q", "bp": 1, "bs": 1, "ap": 2, "as": 1, "t": "2024-01-01T00:00:00Z"},
        {"T": "q", "S": "A", "bp": 1, "bs": 2**70, "ap": 2, "as": 1, "t": "2024-01-01T00:00:00Z"},
        {"T": "unknown-type"},
        {"no": "type"},
        5,
        "text",
        None,
    ],
)
def test_malformed_elements_are_counted_and_the_good_quote_kept(bad: object) -> None:
    good = {"T": "q", "S": "B", "bp": 1.5, "bs": 1, "ap": 1.6, "as": 1, "t": "2024-01-01T00:00:00Z"}
    frame = decode_frame(json.dumps([good, bad, good]).encode())
    assert [q.S for q in frame.quotes] == ["B", "B"]
    assert frame.malformed == 1
    assert frame.errors and "element 1" in frame.errors[0]


def test_bytes_that_are_not_utf8_in_one_element_drop_that_element() -> None:
    # The reader takes frames as bytes, unchecked: msgspec's UnicodeDecodeError is bad
    # input like any other (found by tests/libs/market_data/native's byte fuzzing).
    good = b'{"T":"q","S":"AAPL","bp":1,"bs":1,"ap":2,"as":1,"t":"2026-11-28T15:22:01.1Z"}'
    frame = decode_frame(b"[" + good + b"," + good.replace(b"AAPL", b"A\xc3(L") + b"]")
    assert ([q.S for q in frame.quotes], frame.malformed) == (["AAPL"], 1)


@pytest.mark.parametrize(
    "bad", [b"", b"not json", b"{}", b'{"T":"q"}', b"[", b"null", b"\xff\xfe", b"[1,2" * 1000]
)
def test_frames_that_are_not_arrays_are_one_malformed_drop(bad: bytes) -> None:
    frame = decode_frame(bad)
    assert (frame.quotes, frame.controls, frame.malformed) == ([], [], 1)


def test_auth_message() -> None:
    assert json.loads(encode_auth("k", "s")) == {"action": "auth", "key": "k", "secret": "s"}


def test_subscription_messages() -> None:
    assert json.loads(encode_subscription("subscribe", {"MSFT", "AAPL"})) == {
        "action": "subscribe",
        "quotes": ["AAPL", "MSFT"],
    }
    assert json.loads(encode_subscription("unsubscribe", ["X"]))["action"] == "unsubscribe"
    with pytest.raises(ValueError):
        encode_subscription("drop", ["X"])
