"""Ticker normalisation and validation: the only gate between user input and the broker."""

from __future__ import annotations

import re
from collections.abc import Iterable

from libs.market_data.exceptions import InvalidSymbolError

__all__ = ["MAX_SYMBOL_LENGTH", "normalize_symbol", "normalize_symbols"]

MAX_SYMBOL_LENGTH = 20
# Letters, digits, '.' (BRK.B) and '/' (BTC/USD); must start with a letter or digit.
_TICKER = re.compile(r"[A-Z0-9][A-Z0-9./]*")


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
