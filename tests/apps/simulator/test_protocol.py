"""The protocol rules without a socket: decoding, symbol syntax, subscription sets, acks."""

from __future__ import annotations

import msgpack
import msgspec
import pytest

from apps.simulator.protocol import (
    CHANNELS,
    InvalidSyntax,
    Subscriptions,
    apply_change,
    decode_message,
    empty_subscriptions,
    error_message,
    quote_symbols,
    subscription_ack,
)
from apps.simulator.quotes import DEFAULT_UNIVERSE


def subscribed(**channels: list[str]) -> Subscriptions:
    subscriptions = empty_subscriptions()
    for channel, symbols in channels.items():
        subscriptions[channel] = dict.fromkeys(symbols)
    return subscriptions


@pytest.mark.parametrize(
    "message",
    ['{"action":"auth"}', b'{"action":"auth"}', b' {"action":"auth"}', b"\n[]"],
)
def test_json_is_read_from_text_and_binary_frames(message: str | bytes) -> None:
    assert decode_message(message) in ({"action": "auth"}, [])


def test_other_binary_frames_are_msgpack() -> None:
    assert decode_message(msgpack.packb({"action": "auth"})) == {"action": "auth"}


@pytest.mark.parametrize("message", ["not json", b"\xc1", b"{"])
def test_undecodable_messages_raise_decode_error(message: str | bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_message(message)


def test_error_message_has_the_documented_text_unless_told() -> None:
    assert error_message(405) == {"T": "error", "code": 405, "msg": "symbol limit exceeded"}
    assert error_message(407, "slow") == {"T": "error", "code": 407, "msg": "slow"}
    assert error_message(499)["msg"] == "error"


def test_subscribe_adds_upper_cased_symbols_in_order_and_leaves_the_input_alone() -> None:
    current = subscribed(quotes=["AAPL"])
    updated = apply_change(
        current, {"quotes": ["msft", "AAPL"], "trades": ["spy"]}, subscribe=True, symbol_limit=None
    )
    assert updated is not None
    assert list(updated["quotes"]) == ["AAPL", "MSFT"]
    assert list(updated["trades"]) == ["SPY"]
    assert list(current["quotes"]) == ["AAPL"]
    assert current["trades"] == {}


def test_unsubscribe_removes_and_ignores_unknown_symbols() -> None:
    current = subscribed(quotes=["AAPL", "MSFT"])
    updated = apply_change(current, {"quotes": ["AAPL", "TSLA"]}, subscribe=False, symbol_limit=1)
    assert updated is not None
    assert list(updated["quotes"]) == ["MSFT"]


@pytest.mark.parametrize("symbols", ["AAPL", [42], ["AA PL"], ["-AAPL"], ["X" * 21]])
def test_malformed_symbol_lists_are_invalid_syntax(symbols: object) -> None:
    with pytest.raises(InvalidSyntax):
        apply_change(empty_subscriptions(), {"quotes": symbols}, subscribe=True, symbol_limit=None)


def test_the_symbol_limit_counts_distinct_symbols_over_all_channels() -> None:
    current = subscribed(quotes=["AAPL", "*"])
    # AAPL again on trades counts once, "*" counts as one symbol: 3 in all.
    change = {"trades": ["AAPL"], "quotes": ["MSFT"]}
    assert apply_change(current, change, subscribe=True, symbol_limit=3) is not None
    assert apply_change(current, change, subscribe=True, symbol_limit=2) is None


def test_quote_symbols_expand_the_wildcard_once() -> None:
    symbols = quote_symbols(subscribed(quotes=["ZZZZ", "*", "AAPL"]))
    assert symbols == (*DEFAULT_UNIVERSE, "ZZZZ")
    assert quote_symbols(subscribed(quotes=["MSFT"])) == ("MSFT",)


def test_the_ack_lists_every_channel_and_copies_trades() -> None:
    ack = subscription_ack(subscribed(trades=["AAPL"], bars=["*"]))
    assert list(ack) == ["T", *CHANNELS, "corrections", "cancelErrors"]
    assert ack["T"] == "subscription"
    assert ack["trades"] == ack["corrections"] == ack["cancelErrors"] == ["AAPL"]
    assert ack["bars"] == ["*"] and ack["quotes"] == []
    assert ack["corrections"] is not ack["cancelErrors"]
