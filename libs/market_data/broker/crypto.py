"""Crypto positions under the names their quotes have: ``BTCUSD`` -> ``BTC/USD``.

Alpaca's trading API names a crypto position without the slash (``BTCUSD``, asset class
``crypto``), while the market-data feeds, the cache (``price:BTC/USD``) and this
service's subscriptions name the pair with it. Read from the asset class and the quote
currencies Alpaca lists pairs against, the pair form routes the position to the crypto
feed and lets the P&L find its price (docs/positions.md, "Crypto positions").
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["CRYPTO_ASSET_CLASS", "QUOTE_CURRENCIES", "crypto_pair", "position_symbol"]

logger = logging.getLogger(__name__)

CRYPTO_ASSET_CLASS: Final = "crypto"
# The currencies Alpaca quotes crypto pairs in. Longest first: BTCUSDT is BTC/USDT,
# not BTCU/SDT; a suffix must leave a base asset before it.
QUOTE_CURRENCIES: Final = ("USDT", "USDC", "USD", "BTC")


def crypto_pair(symbol: str) -> str | None:
    """``BTCUSD`` -> ``BTC/USD``; a pair already slashed is kept; ``None`` when no known
    quote currency ends the symbol after a base asset."""
    text = symbol.strip().upper()
    if "/" in text:
        return text
    for currency in QUOTE_CURRENCIES:
        if text.endswith(currency) and len(text) > len(currency):
            return f"{text[: -len(currency)]}/{currency}"
    return None


def position_symbol(symbol: str, asset_class: str) -> str:
    """The symbol a position is quoted and cached under: the pair for a crypto position,
    else ``symbol`` as reported. A crypto symbol without a known quote currency is kept
    as reported (and logged): it cannot be routed to the crypto feed."""
    if asset_class != CRYPTO_ASSET_CLASS:
        return symbol
    pair = crypto_pair(symbol)
    if pair is None:
        logger.warning(
            "crypto position %s: no known quote currency (%s); kept as reported",
            symbol,
            ", ".join(QUOTE_CURRENCIES),
        )
        return symbol
    return pair
