"""The subscriber's connections to a Redis Cluster: sharded pub/sub and per-slot reads.

On a cluster a symbol's events are published with ``SPUBLISH`` on its own shard
(``price.updated.{AAPL}``), so :class:`ShardedLink` opens one pub/sub connection per
primary and ``SSUBSCRIBE``s each channel on its slot's owner (one command per slot:
Redis refuses a cross-slot ``SSUBSCRIBE``). The status channel stays classic
``SUBSCRIBE`` on one node: every node relays classic messages. Snapshots are one
``MGET`` per slot (redis-py's ``mget_nonatomic``), never a cross-slot ``MGET``.

Anything that changes where a channel lives (a slot moved: Redis ends our subscription
with an unrequested ``sunsubscribe``; a failover: the connection drops) surfaces as a
lost connection, so :class:`PriceSubscriber` reconnects, subscribes on the new owners
and re-reads the cache: nothing is missed without a resync (docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from libs.market_data.consumers.bulk_pubsub import BulkPubSub
from libs.market_data.keys import KeySpace
from libs.market_data.topics import Channel, parse_topic
from libs.redis_client.cluster import ClusterParams
from libs.tasks import cancel_and_wait

__all__ = ["ShardedLink"]

_RESCAN: Final = 2.0  # seconds between looks for new symbols when following "*"


class ShardedLink:
    """Sharded pub/sub over every primary, read as one stream of messages."""

    def __init__(self, cluster: ClusterParams, keys: KeySpace) -> None:
        self._cluster_params = cluster
        self._keys = keys
        # No silent retries (as in standalone): a lost subscription must be noticed.
        self._cluster = RedisCluster(
            **cluster.cluster_kwargs(), decode_responses=False, retry=Retry(NoBackoff(), 0)
        )
        # One pub/sub connection per primary, read in bulk (bulk_pubsub.py says why).
        self._pubsubs: dict[tuple[str, int], BulkPubSub] = {}
        self._messages: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._symbols: frozenset[str] = frozenset()
        self._closing = False

    async def open(self, status_channel: str, symbols: Sequence[str] | None) -> None:
        """Subscribe to the status channel and to ``symbols``' channels (None: all known)."""
        await self._cluster.initialize()
        wanted = list(symbols) if symbols is not None else await self.known_symbols()
        self._symbols = frozenset(wanted)
        by_slot: dict[int, list[str]] = defaultdict(list)
        for symbol in wanted:
            channel = self._keys.price_channel(symbol)
            by_slot[key_slot(channel.encode())].append(channel)
        # Per primary: its slots' channels, and the status channel on the first one.
        plans: dict[tuple[str, int], list[list[str]]] = defaultdict(list)
        status_node = self._owner(0)
        plans[status_node] = []
        for slot, channels in by_slot.items():
            plans[self._owner(slot)].append(channels)
        for address, shards in plans.items():
            pubsub = self._pubsubs[address] = BulkPubSub(self._cluster_params.node(*address))
            status = [status_channel] if address == status_node else []
            await pubsub.open(status, shards=shards)
        for address, pubsub in self._pubsubs.items():
            name = f"redis-shard-reader-{address[0]}:{address[1]}"
            self._tasks.append(asyncio.create_task(self._read(pubsub), name=name))
        if symbols is None:
            self._tasks.append(asyncio.create_task(self._rescan(), name="redis-shard-rescan"))

    def _owner(self, slot: int) -> tuple[str, int]:
        nodes = self._cluster.nodes_manager.slots_cache.get(slot)
        if not nodes:
            raise RedisConnectionError(f"slot {slot} has no primary right now")
        return nodes[0].host, int(nodes[0].port)

    async def _read(self, pubsub: BulkPubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(1.0)
                if message is None:
                    continue
                if message["type"] == "sunsubscribe" and not self._closing:
                    # Unrequested: the slot moved away from this node.
                    raise RedisConnectionError(f"slot of {message['channel']!r} moved")
                self._messages.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the reader, which reconnects
            self._messages.put_nowait(exc)

    async def _rescan(self) -> None:
        while True:
            await asyncio.sleep(_RESCAN)
            try:
                found = set(await self.known_symbols())
            except Exception as exc:
                self._messages.put_nowait(exc)
                return
            if not found <= self._symbols:
                # A symbol we do not follow yet: subscribe again, with a resync.
                self._messages.put_nowait(RedisConnectionError("new symbols to follow"))
                return

    async def get_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message from any shard, None after ``timeout``; raises if one is lost."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see libs/tasks
                item = await self._messages.get()
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def known_symbols(self) -> list[str]:
        """Symbols with a cached price, and the saved quote subscriptions."""
        keys = self._keys
        found: dict[str, None] = {}
        pattern = keys.price_key_prefix + "*"
        async for key in self._cluster.scan_iter(match=pattern, count=1000):
            symbol = keys.symbol_in(key.decode(), keys.price_key_prefix)
            if symbol is not None:
                found[symbol] = None
        saved = await self._cluster.hgetall(keys.subscriptions_key)
        for field in saved:
            text = field.decode() if isinstance(field, bytes) else field
            channel, symbol = parse_topic(text)
            if channel is Channel.QUOTES and symbol != "*":
                found[symbol] = None
        return sorted(found)

    async def mget(self, keys: list[str]) -> list[Any]:
        """Values of ``keys`` in order: one ``MGET`` per slot."""
        return list(await self._cluster.mget_nonatomic(keys))

    async def aclose(self) -> None:
        self._closing = True
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks)
        pubsubs, self._pubsubs = list(self._pubsubs.values()), {}
        for pubsub in pubsubs:
            await pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._cluster.aclose()
