"""The rules of Alpaca's stream protocol that need no socket (docs/concepts/websocket-streaming.md).

Error codes and their texts, decoding a client message in either codec, symbol syntax,
and a session's subscription sets: applying a subscribe or unsubscribe, the symbol
limit, the ack listing every channel, and the quote symbols a subscription streams.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from apps.simulator.quotes import DEFAULT_UNIVERSE
from libs.market_data.symbols import TICKER_PATTERN

__all__ = [
    "CHANNELS",
    "ERROR_MESSAGES",
    "FATAL_AUTH_CODES",
    "SYMBOL",
    "InvalidSyntax",
    "Subscriptions",
    "apply_change",
    "decode_message",
    "empty_subscriptions",
    "error_message",
    "error_text",
    "quote_symbols",
    "subscription_ack",
]

# Documented error codes and their exact texts (reference §3).
ERROR_MESSAGES: Final[Mapping[int, str]] = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    408: "v2 not enabled",
    409: "insufficient subscription",
    410: "invalid subscribe action for this feed",
    411: "insufficient scope",
    412: "option messages are only available in MsgPack format",
    413: "star subscription is not allowed for option quotes",
    500: "internal error",
}
# Auth answers after which the session cannot continue; 406 and others leave the
# socket open, so a client may retry auth on it as the Go SDK does.
FATAL_AUTH_CODES: Final = frozenset({402, 404, 408, 409, 411})
# Channels a client subscribes; corrections and cancelErrors follow trades.
CHANNELS: Final = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")

# A ticker as Alpaca spells one, on the wire and over REST alike.
SYMBOL: Final = re.compile(TICKER_PATTERN)  # the service's own rule (libs.market_data)
_WILDCARD: Final = "*"

# Channel -> symbols; dicts as insertion-ordered sets, since acks list symbols in the
# order they were subscribed.
Subscriptions = dict[str, dict[str, None]]


class InvalidSyntax(Exception):
    """A client message the protocol answers with 400."""


def error_text(code: int, msg: str | None = None) -> str:
    """``msg``, or the documented text of ``code``."""
    return ERROR_MESSAGES.get(code, "error") if msg is None else msg


def error_message(code: int, msg: str | None = None) -> dict[str, Any]:
    """The error control message (documented text by default)."""
    return {"T": "error", "code": code, "msg": error_text(code, msg)}


def decode_message(message: str | bytes) -> Any:
    """A client message from a text (JSON) or binary (JSON or msgpack) frame.

    Raises :class:`msgspec.DecodeError` when it is neither.
    """
    if isinstance(message, str):
        return msgspec.json.decode(message)
    # '{' and '[' would be a lone msgpack integer; anything else is a msgpack map.
    if message[:1] in (b"{", b"[", b" ", b"\n", b"\r", b"\t"):
        return msgspec.json.decode(message)
    return msgspec.msgpack.decode(message)


def _parse_symbols(value: object) -> list[str]:
    if not isinstance(value, list):
        raise InvalidSyntax
    symbols: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise InvalidSyntax
        # Case is forgiven; anything else that is not a ticker is a syntax error.
        symbol = item.upper()
        if symbol != _WILDCARD and SYMBOL.fullmatch(symbol) is None:
            raise InvalidSyntax
        symbols.append(symbol)
    return symbols


def empty_subscriptions() -> Subscriptions:
    """No symbol on any channel."""
    return {channel: {} for channel in CHANNELS}


def apply_change(
    current: Subscriptions,
    message: Mapping[str, Any],
    *,
    subscribe: bool,
    symbol_limit: int | None,
) -> Subscriptions | None:
    """The subscriptions after ``message``, or ``None`` when the symbol limit refuses it.

    ``current`` is left alone. Raises :class:`InvalidSyntax` for a malformed channel list.
    """
    changes = {ch: _parse_symbols(message[ch]) for ch in CHANNELS if ch in message}
    updated = {ch: dict(symbols) for ch, symbols in current.items()}
    for channel, symbols in changes.items():
        target = updated[channel]
        for symbol in symbols:
            if subscribe:
                target[symbol] = None
            else:
                target.pop(symbol, None)
    if subscribe and symbol_limit is not None:
        # A symbol on several channels counts once, "*" as one symbol.
        distinct = set().union(*(symbols.keys() for symbols in updated.values()))
        if len(distinct) > symbol_limit:
            return None
    return updated


def quote_symbols(
    subscriptions: Subscriptions, universe: tuple[str, ...] = DEFAULT_UNIVERSE
) -> tuple[str, ...]:
    """The symbols whose quotes a session streams, ``"*"`` expanded to ``universe``."""
    quotes = subscriptions["quotes"]
    if _WILDCARD in quotes and len(quotes) == 1:
        return universe  # as is: a skewed universe repeats symbols, in its walk order
    expanded = dict.fromkeys(universe) if _WILDCARD in quotes else {}
    expanded.update((symbol, None) for symbol in quotes if symbol != _WILDCARD)
    return tuple(expanded)


def subscription_ack(subscriptions: Subscriptions) -> dict[str, Any]:
    """The ``subscription`` message: the full set on every channel, not the change."""
    trades = list(subscriptions["trades"])
    ack: dict[str, Any] = {"T": "subscription"}
    ack.update((channel, list(subscriptions[channel])) for channel in CHANNELS)
    ack["corrections"] = trades
    ack["cancelErrors"] = list(trades)
    return ack
