"""The names of everything the service keeps in Redis: one place for keys and channels.

The writer (``pipeline/sink.py``), the read side (``cache/``), the subscription registry
and the stream all take their names from here, so a reader never depends on a writer
just to learn a prefix. The spec fixes ``price:{SYMBOL}`` and ``price.updated.{SYMBOL}``;
the rest are this project's own (docs/architecture.md, "Contracts").

A :class:`KeySpace` puts every name under an optional namespace (``REDIS_NAMESPACE``):
``paper`` gives ``paper:price:AAPL`` and ``paper:price.updated.AAPL``, so two
deployments can share one Redis (pub/sub channels ignore ``REDIS_DB``). The empty
namespace, the default, keeps the spec's names exactly.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "DEFAULT_KEYS",
    "HEARTBEAT_KEY",
    "PRICE_CHANNEL_PREFIX",
    "PRICE_KEY_PREFIX",
    "STATUS_CHANNEL",
    "SUBSCRIPTIONS_KEY",
    "KeySpace",
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


_NAMESPACE: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class KeySpace:
    """Every key and channel name under one namespace ("" = the spec's names)."""

    __slots__ = (
        "heartbeat_key",
        "namespace",
        "price_channel_prefix",
        "price_key_prefix",
        "status_channel",
        "subscriptions_key",
    )

    def __init__(self, namespace: str = "") -> None:
        if namespace and _NAMESPACE.fullmatch(namespace) is None:
            raise ValueError(f"invalid namespace {namespace!r}: 1 to 32 of A-Z a-z 0-9 _ . -")
        prefix = f"{namespace}:" if namespace else ""
        self.namespace = namespace
        self.price_key_prefix = prefix + PRICE_KEY_PREFIX
        self.price_channel_prefix = prefix + PRICE_CHANNEL_PREFIX
        self.status_channel = prefix + STATUS_CHANNEL
        self.subscriptions_key = prefix + SUBSCRIPTIONS_KEY
        self.heartbeat_key = prefix + HEARTBEAT_KEY

    def __repr__(self) -> str:
        return f"KeySpace({self.namespace!r})"

    def price_key(self, symbol: str) -> str:
        return self.price_key_prefix + symbol

    def price_channel(self, symbol: str) -> str:
        return self.price_channel_prefix + symbol


DEFAULT_KEYS: Final = KeySpace()
