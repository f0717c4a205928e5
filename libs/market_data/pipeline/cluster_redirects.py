"""The cluster sink's writes that reached no primary, re-routed until none is left.

A write goes unwritten when a primary answers ``-MOVED``/``-ASK`` (the slot moved) or
when its slot has no known owner (no topology yet, or a failover under way).
:class:`RedirectedWrites` holds the newest such update per symbol and, in one background
task, asks the cluster its slots again and writes what it holds through the cluster
sink, backing off from 5 ms to 0.2 s, until nothing is held (docs/cluster.md). Only an
update that is still its symbol's newest is ever held or sent, so nothing is reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Final

from libs.market_data.pipeline.processor import PriceUpdate
from libs.redis_client.exceptions import RedisClientError
from libs.tasks import cancel_and_wait

__all__ = ["RedirectedWrites"]

# The cluster sink's logger: these lines are about its writes.
logger = logging.getLogger("libs.market_data.pipeline.cluster_sink")

_REDIRECT_DELAY: Final = 0.005  # first retry of redirected writes; doubles to 0.2 s


class RedirectedWrites:
    """The newest unwritten update per symbol, and the task that writes them again.

    ``latest`` is the cluster sink's newest update per symbol (read, never changed here);
    ``refresh`` asks the cluster its slots, ``write`` routes updates to their primaries,
    ``closed`` says the sink is closing: nothing more is re-sent.
    """

    def __init__(
        self,
        latest: Mapping[str, PriceUpdate],
        *,
        refresh: Callable[[], Awaitable[None]],
        write: Callable[[Sequence[PriceUpdate]], Awaitable[None]],
        closed: Callable[[], bool],
    ) -> None:
        self._latest = latest
        self._refresh = refresh
        self._write = write
        self._closed = closed
        self._held: dict[str, PriceUpdate] = {}
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """The symbols held."""
        return len(self._held)

    def hold(self, updates: Iterable[PriceUpdate]) -> None:
        """Keep those still their symbol's newest, and re-send them in the background."""
        latest = self._latest
        for update in updates:
            if latest.get(update[0]) is update:
                self._held[update[0]] = update
        task = self._task
        if self._held and not self._closed() and (task is None or task.done()):
            self._task = asyncio.create_task(self._reroute(), name="redis-cluster-reroute")

    def forget(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            self._held.pop(symbol, None)

    def clear(self) -> None:
        self._held.clear()

    async def stop(self) -> None:
        """Cancel the re-sending, if it runs; what is held stays held."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _reroute(self) -> None:
        """Refresh the topology and send the redirected updates to their owners, until none."""
        delay = _REDIRECT_DELAY
        while self._held and not self._closed():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
            with contextlib.suppress(RedisClientError):
                await self._refresh()
            held = list(self._held.values())
            self._held.clear()
            latest = self._latest
            newest = [u for u in held if latest.get(u[0]) is u]
            logger.debug("re-routing %d held updates (%d still newest)", len(held), len(newest))
            await self._write(newest)
