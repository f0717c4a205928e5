"""Subscription topics: one channel of one symbol, as one string.

A topic is what the registry saves, the session wants and the broker acknowledges:
``AAPL`` is AAPL's quotes (the spec's subscription, unchanged), ``trades:AAPL`` its
trades, ``bars:AAPL`` its minute bars (with ``updatedBars`` corrections), and ``*`` /
``trades:*`` / ``bars:*`` the whole market on a channel. A colon is never part of a
ticker, so the string is unambiguous. Crypto pairs (``BTC/USD``) route to the crypto
feed; option symbols are refused (docs/architecture.md, "Topics").
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from libs.market_data.exceptions import InvalidSymbolError
from libs.market_data.symbols import WILDCARD, is_crypto, is_option, normalize_symbol

__all__ = [
    "Channel",
    "channel_topics",
    "feed_of",
    "make_topic",
    "normalize_topics",
    "parse_topic",
    "topic_symbols",
]


class Channel(StrEnum):
    """A broker channel the service keeps; the values are Alpaca's channel names."""

    QUOTES = "quotes"
    TRADES = "trades"
    BARS = "bars"


_PREFIXED: Final = {"trades:": Channel.TRADES, "bars:": Channel.BARS}


def make_topic(channel: Channel, symbol: str) -> str:
    """The topic of ``symbol`` on ``channel`` (a quote topic is the bare symbol)."""
    return symbol if channel is Channel.QUOTES else f"{channel.value}:{symbol}"


def parse_topic(topic: str) -> tuple[Channel, str]:
    """``(channel, symbol)`` of a topic made by :func:`make_topic`."""
    head, colon, rest = topic.partition(":")
    if colon:
        channel = _PREFIXED.get(head + colon)
        if channel is not None:
            return channel, rest
    return Channel.QUOTES, topic


def _subscribable(symbol: object) -> str:
    if isinstance(symbol, str) and symbol.strip() == WILDCARD:
        return WILDCARD
    text = normalize_symbol(symbol)
    if is_option(text):
        raise InvalidSymbolError(
            symbol,
            "is an option contract (OCC symbol); options are out of scope: "
            "subscribe stocks, or crypto pairs such as BTC/USD",
        )
    return text


def normalize_topics(
    symbols: Iterable[object], channels: Iterable[Channel | str] = (Channel.QUOTES,)
) -> list[str]:
    """The topics of ``symbols`` (tickers, crypto pairs or ``*``) on ``channels``.

    Raises :class:`InvalidSymbolError` for a bad ticker or an option symbol, and
    ``ValueError`` for an unknown channel.
    Duplicates are dropped, first-seen order kept (symbol-major).
    """
    wanted = [Channel(c) for c in dict.fromkeys(channels)]
    if not wanted:
        raise ValueError("at least one channel")
    topics: dict[str, None] = {}
    for symbol in symbols:
        text = _subscribable(symbol)
        for channel in wanted:
            topics.setdefault(make_topic(channel, text), None)
    return list(topics)


def channel_topics(topics: Iterable[object]) -> list[str]:
    """Validate topics as saved or passed around (``AAPL``, ``trades:BTC/USD``, ``*``)."""
    valid: dict[str, None] = {}
    for topic in topics:
        if not isinstance(topic, str):
            raise InvalidSymbolError(topic, "must be a string")
        channel, symbol = parse_topic(topic.strip())
        valid.setdefault(make_topic(channel, _subscribable(symbol)), None)
    return list(valid)


def topic_symbols(topics: Iterable[str]) -> dict[str, list[str]]:
    """Symbol -> its channels, both sorted: how the API shows a set of topics."""
    by_symbol: dict[str, set[str]] = {}
    for topic in topics:
        channel, symbol = parse_topic(topic)
        by_symbol.setdefault(symbol, set()).add(channel.value)
    return {symbol: sorted(by_symbol[symbol]) for symbol in sorted(by_symbol)}


def feed_of(topic: str) -> str:
    """``crypto`` for a crypto pair's topic, else ``stocks`` (``*`` included)."""
    return "crypto" if is_crypto(parse_topic(topic)[1]) else "stocks"
