"""The names of everything the service keeps in Redis: one place for keys and channels.

The writer (``pipeline/sink.py``), the read side (``cache/``), the subscription registry
and the stream all take their names from here, so a reader never depends on a writer
just to learn a prefix. The spec fixes ``price:{SYMBOL}`` and ``price.updated.{SYMBOL}``;
the rest are this project's own (docs/architecture.md, "Contracts").
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "HEARTBEAT_KEY",
    "PRICE_CHANNEL_PREFIX",
    "PRICE_KEY_PREFIX",
    "STATUS_CHANNEL",
    "SUBSCRIPTIONS_KEY",
    "price_channel",
    "price_key",
]

PRICE_KEY_PREFIX: Final = "price:"
PRICE_CHANNEL_PREFIX: Final = "price.updated."
# Gap notices for consumers: after one, re-read the cache rather than trust the events.
STATUS_CHANNEL: Final = "market_data.status"
# symbol -> comma-separated sources (manual, positions): what the next start resumes.
SUBSCRIPTIONS_KEY: Final = "market_data:subscriptions"
# Epoch seconds of the last moment the service was streaming, refreshed every second:
# after a crash the next start announces the gap since then.
HEARTBEAT_KEY: Final = "market_data:heartbeat"


def price_key(symbol: str) -> str:
    """``price:{SYMBOL}``: the latest ``PriceData`` JSON of a symbol."""
    return PRICE_KEY_PREFIX + symbol


def price_channel(symbol: str) -> str:
    """``price.updated.{SYMBOL}``: where each change of a symbol's price is announced."""
    return PRICE_CHANNEL_PREFIX + symbol
