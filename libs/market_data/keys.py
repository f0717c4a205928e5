"""The names of everything the service keeps in Redis: one place for keys and channels.

The writer (``pipeline/sink.py``), the read side (``cache/``), the subscription registry
and the stream all take their names from here, so a reader never depends on a writer
just to learn a prefix. The spec fixes ``price:{SYMBOL}`` and ``price.updated.{SYMBOL}``;
the rest are this project's own (docs/architecture.md, "Contracts").

A :class:`KeySpace` puts every name under an optional namespace (``REDIS_NAMESPACE``):
``paper`` gives ``paper:price:AAPL`` and ``paper:price.updated.AAPL``, so two
deployments can share one Redis (pub/sub channels ignore ``REDIS_DB``). The empty
namespace, the default, keeps the spec's names exactly. ``KeySpace(cluster=True)`` keeps
the symbol in braces for a Redis Cluster (``price:{AAPL}``; docs/cluster.md).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "BAR_CHANNEL_PREFIX",
    "BAR_KEY_PREFIX",
    "DEFAULT_KEYS",
    "EPOCH_KEY",
    "HEARTBEAT_KEY",
    "LEADER_KEY",
    "LEADER_REPLIES_PREFIX",
    "LEADER_REQUESTS_CHANNEL",
    "PRICE_CHANNEL_PREFIX",
    "PRICE_KEY_PREFIX",
    "STATUS_CHANNEL",
    "SUBSCRIPTIONS_KEY",
    "TRADE_CHANNEL_PREFIX",
    "TRADE_KEY_PREFIX",
    "KeySpace",
    "price_channel",
    "price_key",
]

PRICE_KEY_PREFIX: Final = "price:"
PRICE_CHANNEL_PREFIX: Final = "price.updated."
# The latest trade and minute bar of a symbol, and their events (README, "Trades and bars").
TRADE_KEY_PREFIX: Final = "trade:"
TRADE_CHANNEL_PREFIX: Final = "trade.updated."
BAR_KEY_PREFIX: Final = "bar:"
BAR_CHANNEL_PREFIX: Final = "bar.updated."
# Gap notices for consumers: after one, re-read the cache rather than trust the events.
STATUS_CHANNEL: Final = "market_data.status"
# symbol -> comma-separated sources (manual, positions): what the next start resumes.
SUBSCRIPTIONS_KEY: Final = "market_data:subscriptions"
# Epoch seconds of the last moment the service was streaming, refreshed every second:
# after a crash the next start announces the gap since then.
HEARTBEAT_KEY: Final = "market_data:heartbeat"
# Leader election (docs/leadership.md): the lease (holder, token, epoch; PX = the TTL),
# the epoch counter every acquisition raises, and the standbys' subscription requests
# to the leader with the leader's answers, one reply channel per instance.
LEADER_KEY: Final = "market_data:leader"
EPOCH_KEY: Final = "market_data:leader:epoch"
LEADER_REQUESTS_CHANNEL: Final = "market_data.leader.requests"
LEADER_REPLIES_PREFIX: Final = "market_data.leader.replies."


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
        "bar_channel_prefix",
        "bar_key_prefix",
        "cluster",
        "epoch_key",
        "heartbeat_key",
        "leader_key",
        "leader_replies_prefix",
        "leader_requests_channel",
        "namespace",
        "price_channel_prefix",
        "price_key_prefix",
        "publish_command",
        "status_channel",
        "subscriptions_key",
        "symbol_suffix",
        "trade_channel_prefix",
        "trade_key_prefix",
    )

    def __init__(self, namespace: str = "", *, cluster: bool = False) -> None:
        if namespace and _NAMESPACE.fullmatch(namespace) is None:
            raise ValueError(f"invalid namespace {namespace!r}: 1 to 32 of A-Z a-z 0-9 _ . -")
        prefix = f"{namespace}:" if namespace else ""
        self.namespace = namespace
        # Redis Cluster (docs/cluster.md): the symbol in braces is the hash tag, so a
        # symbol's key and channel share a slot (price:{AAPL}, price.updated.{AAPL});
        # events go out with SPUBLISH, on that shard only. Per-symbol names are
        # prefix + symbol + symbol_suffix; standalone names keep no braces.
        self.cluster = cluster
        tag = "{" if cluster else ""
        self.symbol_suffix = "}" if cluster else ""
        self.publish_command = "SPUBLISH" if cluster else "PUBLISH"
        self.price_key_prefix = prefix + PRICE_KEY_PREFIX + tag
        self.price_channel_prefix = prefix + PRICE_CHANNEL_PREFIX + tag
        self.trade_key_prefix = prefix + TRADE_KEY_PREFIX + tag
        self.trade_channel_prefix = prefix + TRADE_CHANNEL_PREFIX + tag
        self.bar_key_prefix = prefix + BAR_KEY_PREFIX + tag
        self.bar_channel_prefix = prefix + BAR_CHANNEL_PREFIX + tag
        self.status_channel = prefix + STATUS_CHANNEL
        self.subscriptions_key = prefix + SUBSCRIPTIONS_KEY
        self.heartbeat_key = prefix + HEARTBEAT_KEY
        # The lease and the epoch stamp share one slot in a cluster (the hash tag), so
        # the lease's scripts touch one node (docs/leadership.md, "On a Redis Cluster").
        leader = "{" + LEADER_KEY + "}" if cluster else LEADER_KEY
        self.leader_key = prefix + leader
        self.epoch_key = prefix + leader + EPOCH_KEY.removeprefix(LEADER_KEY)
        self.leader_requests_channel = prefix + LEADER_REQUESTS_CHANNEL
        self.leader_replies_prefix = prefix + LEADER_REPLIES_PREFIX

    def __repr__(self) -> str:
        return f"KeySpace({self.namespace!r}, cluster={self.cluster})"

    def price_key(self, symbol: str) -> str:
        return self.price_key_prefix + symbol + self.symbol_suffix

    def price_channel(self, symbol: str) -> str:
        return self.price_channel_prefix + symbol + self.symbol_suffix

    def trade_key(self, symbol: str) -> str:
        return self.trade_key_prefix + symbol + self.symbol_suffix

    def trade_channel(self, symbol: str) -> str:
        return self.trade_channel_prefix + symbol + self.symbol_suffix

    def bar_key(self, symbol: str) -> str:
        return self.bar_key_prefix + symbol + self.symbol_suffix

    def bar_channel(self, symbol: str) -> str:
        return self.bar_channel_prefix + symbol + self.symbol_suffix

    def symbol_in(self, name: str, prefix: str) -> str | None:
        """The symbol of a per-symbol ``name`` built on ``prefix`` (None if it is not one)."""
        suffix = self.symbol_suffix
        if not name.startswith(prefix) or not name.endswith(suffix) or len(name) <= len(prefix):
            return None
        return name[len(prefix) : len(name) - len(suffix)] or None


DEFAULT_KEYS: Final = KeySpace()
