"""Ticker normalisation and validation: the only gate between user input and the broker."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from libs.market_data.exceptions import InvalidSymbolError

__all__ = [
    "MAX_SYMBOL_LENGTH",
    "TICKER_PATTERN",
    "TICKER_PATTERN_ANY_CASE",
    "WILDCARD",
    "is_crypto",
    "is_option",
    "normalize_symbol",
    "normalize_symbols",
]

# The ticker rule, written once: letters, digits, '.' (BRK.B) and '/' (BTC/USD), starting
# with a letter or digit, at most MAX_SYMBOL_LENGTH characters. Everything else that
# checks a ticker (the API's OpenAPI pattern, the simulator) derives from these.
MAX_SYMBOL_LENGTH: Final = 20


def _ticker(letters: str) -> str:
    return rf"[{letters}0-9][{letters}0-9./]{{0,{MAX_SYMBOL_LENGTH - 1}}}"


# Regular-expression text (no anchors: match it whole) of an upper-case ticker, and of one
# in either case before upper-casing (plain classes, no inline flag: JSON Schema's
# ECMA-262 patterns read it the same).
TICKER_PATTERN: Final = _ticker("A-Z")
TICKER_PATTERN_ANY_CASE: Final = _ticker("A-Za-z")
_TICKER: Final = re.compile(TICKER_PATTERN)
# Alpaca's wildcard: every symbol of the feed (docs/architecture.md, "The whole market").
WILDCARD: Final = "*"
# An OCC option symbol: root (1-6 letters), expiry YYMMDD, C or P, strike x 1000 on 8
# digits (AAPL240621C00190000). Options are out of scope: Alpaca serves them msgpack-only.
_OCC_OPTION: Final = re.compile(r"[A-Z]{1,6}[0-9]{6}[CP][0-9]{8}")


def is_crypto(symbol: str) -> bool:
    """A crypto pair (``BTC/USD``): the only symbols with a slash; served by the crypto feed."""
    return "/" in symbol


def is_option(symbol: str) -> bool:
    """An OCC option contract symbol (normalised, upper-case)."""
    return _OCC_OPTION.fullmatch(symbol) is not None


def normalize_symbol(symbol: object) -> str:
    """Return ``symbol`` upper-cased and stripped, or raise :class:`InvalidSymbolError`."""
    if not isinstance(symbol, str):
        raise InvalidSymbolError(symbol, "must be a string")
    text = symbol.strip().upper()
    if not text:
        raise InvalidSymbolError(symbol, "is empty")
    if len(text) > MAX_SYMBOL_LENGTH:
        raise InvalidSymbolError(symbol, f"longer than {MAX_SYMBOL_LENGTH} characters")
    # ASCII before upper(): dotless i (U+0131) and long s (U+017F) upper-case to I and S,
    # so "\u0131bm" would become IBM.
    if not symbol.isascii() or _TICKER.fullmatch(text) is None:
        raise InvalidSymbolError(
            symbol, "only letters, digits, '.' and '/' are allowed, starting with a letter or digit"
        )
    return text


def normalize_symbols(symbols: Iterable[object]) -> list[str]:
    """Normalise many symbols, dropping duplicates and keeping first-seen order."""
    seen: dict[str, None] = {}
    for symbol in symbols:
        seen.setdefault(normalize_symbol(symbol), None)
    return list(seen)
