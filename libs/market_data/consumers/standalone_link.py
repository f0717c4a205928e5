"""The subscriber's connection to one Redis: classic pub/sub and plain reads.

The counterpart of :class:`~libs.market_data.consumers.cluster_link.ShardedLink` (a
Redis Cluster), with the same methods, so that :class:`PriceSubscriber` reads either
the same way: ``open`` subscribes (``price.updated.{SYM}``, or the pattern for every
symbol, and the status channel), ``get_message`` reads the next message, and
``known_symbols``/``mget`` read the cache on the same connection's client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from libs.market_data.consumers.bulk_pubsub import BulkPubSub
from libs.market_data.keys import KeySpace
from libs.redis_client import RedisConnectionError as LinkLostError
from libs.redis_client import RedisConnectionParams

__all__ = ["LOST", "StandaloneLink"]

# Errors that mean the connection is gone (CLIENT KILL, output buffer overflow, restart):
# redis-py's (the cache reads, the cluster's pub/sub) and this package's (bulk_pubsub.py).
LOST: Final = (RedisConnectionError, RedisTimeoutError, OSError, LinkLostError)


class StandaloneLink:
    """Pub/sub and cache reads on one Redis server, over one redis-py client."""

    def __init__(self, params: RedisConnectionParams, keys: KeySpace) -> None:
        self._keys = keys
        # No silent retries: redis-py would reconnect the pub/sub and subscribe again
        # on its own, and the events missed meanwhile would go unnoticed.
        self._client = redis.asyncio.Redis(**params.redis_kwargs(), retry=Retry(NoBackoff(), 0))
        # Read in bulk, not through redis-py's per-message path (bulk_pubsub.py says why).
        self._pubsub = BulkPubSub(params)

    async def open(self, status_channel: str, symbols: Sequence[str] | None) -> None:
        """Subscribe to the status channel and to ``symbols``' channels (None: the pattern)."""
        channels = [status_channel]
        patterns: list[str] = []
        if symbols is None:
            patterns.append(self._keys.price_channel_prefix + "*")
        else:
            channels.extend(self._keys.price_channel(s) for s in symbols)
        try:
            await self._pubsub.open(channels, patterns)
        except BaseException:
            await self._pubsub.aclose()
            raise

    async def get_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message (subscribe confirmations included), None after ``timeout``."""
        return await self._pubsub.get_message(timeout)

    async def known_symbols(self) -> list[str]:
        """Symbols with a cached price (``SCAN`` of the price keys)."""
        prefix = self._keys.price_key_prefix
        found = []
        async for key in self._client.scan_iter(match=prefix + "*", count=1000):
            found.append(key.decode()[len(prefix) :])
        return found

    async def mget(self, keys: list[str]) -> list[Any]:
        """Values of ``keys`` in order (one ``MGET``)."""
        return list(await self._client.mget(keys))

    async def aclose(self) -> None:
        """Close the pub/sub, then the client; a connection already gone is no error."""
        await self._pubsub.aclose()
        with contextlib.suppress(*LOST):
            await self._client.aclose()
