"""Which primary owns each slot of a Redis Cluster, asked again when it may have changed.

The cluster sink asks on start, after a redirect (``-MOVED``/``-ASK``) and, through
:meth:`TopologyWatch.start`, on a timer: every ``_WATCH_FAULT`` seconds while a primary
is not taking writes (a failover moves its slots without any redirect reaching us),
every ``_WATCH_CALM`` seconds otherwise (a reshard without writes to the moved slots).
A changed map goes to ``on_change``, which re-routes the writes (docs/cluster.md):
:class:`SlotRouter` then names each symbol's primary, by the slot of its hash tag.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final

from redis.crc import key_slot

from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.shard_sink import ShardSink
from libs.market_data.topics import parse_topic
from libs.redis_client.cluster import ClusterRedisClient, Topology
from libs.redis_client.exceptions import RedisClientError
from libs.tasks import cancel_and_wait

__all__ = ["SlotRouter", "TopologyWatch"]

# The cluster sink's logger: these lines are about its view of the cluster.
logger = logging.getLogger("libs.market_data.pipeline.cluster_sink")

_WATCH_FAULT: Final = 0.25  # seconds between topology checks while a primary is out
_WATCH_CALM: Final = 5.0  # and otherwise


class TopologyWatch:
    """The slot map last applied, its refreshes, and the timer that asks again."""

    def __init__(
        self,
        client: ClusterRedisClient,
        on_change: Callable[[Topology], Awaitable[None]],
        calm: Callable[[], bool],
    ) -> None:
        self._client = client
        self._on_change = on_change
        self._calm = calm  # every primary takes writes: the slower timer will do
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.current: Topology | None = None
        self.last_error: str | None = None
        self.refreshes = 0

    async def refresh(self) -> None:
        """Ask the cluster which primary owns each slot; apply what changed.

        Raises :class:`RedisClientError` when no node answers (kept in ``last_error``).
        """
        async with self._lock:
            try:
                topology = await self._client.topology(refresh=self.current is not None)
            except RedisClientError as exc:
                self.last_error = str(exc)
                raise
            self.last_error = None
            self.refreshes += 1
            if topology == self.current:
                return
            await self._on_change(topology)
            self.current = topology

    def start(self) -> None:
        """Keep asking in the background, until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-cluster-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_CALM if self._calm() else _WATCH_FAULT)
            try:
                await self.refresh()
            except RedisClientError as exc:
                logger.debug("cluster topology refresh failed: %s", exc)


class SlotRouter:
    """Symbol -> the sink of the primary that owns its slot, cached per symbol."""

    __slots__ = ("_keys", "_owner", "route")

    def __init__(self, keys: KeySpace) -> None:
        self._keys = keys
        self._owner: list[ShardSink | None] = []  # per slot; empty: no topology yet
        # Read directly per update (a dict lookup; locate() only on a miss).
        self.route: dict[str, ShardSink] = {}

    def locate(self, symbol: str) -> ShardSink | None:
        """The owner of ``symbol``'s slot (cached); None without one (no topology yet)."""
        owner = self._owner
        # A topic (AAPL, trades:AAPL, bars:AAPL) hashes by its symbol, the names' hash tag.
        slot = key_slot(self._keys.price_key(parse_topic(symbol)[1]).encode())
        shard = owner[slot] if owner else None
        if shard is not None:
            self.route[symbol] = shard
        return shard

    def rebuild(self, owners: Sequence[ShardSink | None]) -> None:
        """A new slot map: every symbol is located again."""
        self._owner = list(owners)
        self.route = {}

    def moved(self, symbols: Iterable[str]) -> None:
        """These symbols' slots were redirected: locate them again."""
        for symbol in symbols:
            self.route.pop(symbol, None)
