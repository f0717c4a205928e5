"""The service's heartbeat in Redis, so a crash leaves a known gap behind.

While the stream is connected, ``market_data:heartbeat`` holds the last moment it was
(epoch seconds), refreshed every :data:`HEARTBEAT_INTERVAL`. A start reads it first: the
first connection then announces ``stream.reconnected`` with the gap since that moment,
as after any reconnect (docs/architecture.md, "Gap notices").
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Final

from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.redis_client import RedisClient, RedisClientError

__all__ = ["HEARTBEAT_INTERVAL", "Heartbeat"]

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL: Final = 1.0
_WAIT_FOR_ALIVE: Final = 0.05
_TTL: Final = 7 * 24 * 3600  # a week: longer than any outage worth announcing


class Heartbeat:
    """Reads the last beat at start; beats while ``alive()`` says so."""

    def __init__(
        self, client: RedisClient, alive: Callable[[], bool], keys: KeySpace = DEFAULT_KEYS
    ) -> None:
        self._client = client
        self._key = keys.heartbeat_key
        self._alive = alive

    async def last(self) -> float | None:
        """When the previous run was last streaming, or None (never, or unreadable)."""
        try:
            async with asyncio.timeout(self._client.params.socket_timeout):
                raw = await self._client.get(self._key)
        except (TimeoutError, RedisClientError) as exc:
            logger.warning("could not read the last heartbeat (%s); no gap announced", exc)
            return None
        if raw is None:
            return None
        try:
            last = float(raw)
        except ValueError:
            logger.warning("ignoring unreadable heartbeat %r", raw[:40])
            return None
        return last if math.isfinite(last) else None

    async def run(self) -> None:
        """Beat until cancelled. Through the command client, not the price writer: a
        beat has no order to keep with the prices and must not count as a write batch."""
        while True:
            if not self._alive():
                # Look again soon: the first beat must follow the connection closely, or a
                # crash in its first second would leave no gap behind to announce.
                await asyncio.sleep(_WAIT_FOR_ALIVE)
                continue
            try:
                async with asyncio.timeout(HEARTBEAT_INTERVAL):
                    await self._client.set(self._key, b"%.6f" % time.time(), ttl=_TTL)
            except (TimeoutError, RedisClientError) as exc:
                logger.debug("heartbeat not written: %s", exc)
            await asyncio.sleep(HEARTBEAT_INTERVAL)
