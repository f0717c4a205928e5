"""The Redis side of the pipeline on a Redis Cluster: one price sink per primary.

Each frame's updates are split by the owner of their symbol's slot (the symbol is the
hash tag: ``price:{AAPL}`` and ``price.updated.{AAPL}`` share it), and each primary's
share goes to that primary's :class:`ShardSink` as one pipelined write. A symbol's
``SET`` and its ``SPUBLISH`` go to the same primary, the event once the ``SET`` landed:
cache before event holds per symbol, as on one Redis (docs/cluster.md).

The topology (slot -> primary) comes from the cluster through redis-py
(``ClusterRedisClient.topology``). It is asked again when a write is redirected
(``-MOVED``/``-ASK``: the slot moved), and every ``_WATCH_FAULT`` seconds while a primary
is not taking writes (a failover moves its slots without any redirect reaching us).
When it changes, what a primary that lost slots still holds is sent to the new owners.
Throughout, only a symbol's newest update is ever rewritten, so nothing is reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Final

from redis.crc import key_slot

from libs.market_data import defaults
from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.condition import SinkState
from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.pipeline.shard_sink import ShardSink
from libs.market_data.pipeline.stats import SinkStats
from libs.market_data.topics import parse_topic
from libs.redis_client.cluster import ClusterRedisClient, Topology
from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.writer import ConnectionGuard
from libs.telemetry import ROUND_TRIP_BUCKETS, Histogram

__all__ = ["ClusterPriceSink"]

logger = logging.getLogger(__name__)

_WATCH_FAULT: Final = 0.25  # seconds between topology checks while a primary is out
_WATCH_CALM: Final = 5.0  # and otherwise (a reshard without writes to the moved slots)
_REDIRECT_DELAY: Final = 0.005  # first retry of redirected writes; doubles to 0.2 s
_SEVERITY: Final = {
    SinkState.UP: 0,
    SinkState.STARTING: 1,
    SinkState.REFUSED: 2,
    SinkState.UNRESPONSIVE: 3,
    SinkState.DOWN: 4,
    SinkState.CLOSED: 5,
}
Address = tuple[str, int]


class ClusterPriceSink:
    """Writes accepted quotes to a Redis Cluster; the same interface as ``RedisPriceSink``."""

    def __init__(
        self,
        client: ClusterRedisClient,
        ttl: int,
        *,
        max_in_flight: int = 32,
        write_timeout: float = defaults.REDIS_WRITE_TIMEOUT,
        keys: KeySpace,
        guard: ConnectionGuard | None = None,
    ) -> None:
        if not keys.cluster:
            raise ValueError("a cluster sink needs the cluster names: KeySpace(cluster=True)")
        self._client = client
        self._ttl = ttl
        self._max_in_flight = max_in_flight
        self._write_timeout = write_timeout
        self._keys = keys
        self._guard = guard
        self._shards: dict[Address, ShardSink] = {}
        self._topology: Topology | None = None
        self._owner: list[ShardSink | None] = []
        self._route: dict[str, ShardSink] = {}  # symbol -> its primary's sink
        self._latest: dict[str, PriceUpdate] = {}
        self._redirected: dict[str, PriceUpdate] = {}  # newest per symbol, to re-route
        self._round_trips = Histogram(ROUND_TRIP_BUCKETS)
        self._watch_task: asyncio.Task[None] | None = None
        self._redirect_task: asyncio.Task[None] | None = None
        self._refresh_lock = asyncio.Lock()
        self._closed = False
        # Told of every notice (the gap fill); each primary's sink calls it through us.
        self.notice_listener: Callable[[str, Mapping[str, Any]], None] | None = None
        self.last_topology_error: str | None = None
        self.topology_refreshes = 0

    # -- state ----------------------------------------------------------------------

    @property
    def shards(self) -> dict[Address, ShardSink]:
        return dict(self._shards)

    @property
    def state(self) -> SinkState:
        if self._closed:
            return SinkState.CLOSED
        if not self._shards:
            return SinkState.DOWN if self.last_topology_error else SinkState.STARTING
        return max((s.state for s in self._shards.values()), key=_SEVERITY.__getitem__)

    @property
    def last_error(self) -> str | None:
        for shard in self._shards.values():
            if shard.last_error is not None:
                return f"{_name(shard.address)}: {shard.last_error}"
        return self.last_topology_error

    @property
    def connected(self) -> bool:
        return bool(self._shards) and all(s.connected for s in self._shards.values())

    @property
    def pending_symbols(self) -> int:
        return sum(s.pending_symbols for s in self._shards.values()) + len(self._redirected)

    @property
    def write_timeout(self) -> float:
        return self._write_timeout

    @property
    def round_trip_seconds(self) -> Histogram:
        return self._round_trips

    def problem(self) -> str | None:
        """Which shard is not taking writes and why, from state already held."""
        problems = []
        topology = self._topology
        for address, shard in sorted(self._shards.items()):
            issue = shard.problem()
            if issue is not None:
                slots = topology.slot_ranges(address) if topology is not None else "?"
                problems.append(f"shard {_name(address)} (slots {slots}): {issue}")
        if topology is not None and None in topology.owners:
            problems.append(f"{topology.owners.count(None)} slots have no primary")
        if not self._shards and self.last_topology_error:
            problems.append(f"cluster topology unknown: {self.last_topology_error}")
        return "; ".join(problems) or None

    def snapshot(self) -> SinkStats:
        parts = [s.snapshot() for s in self._shards.values()]
        trips = [p.last_round_trip_ms for p in parts if p.last_round_trip_ms is not None]
        return SinkStats(
            redis_connected=self.connected,
            redis_state=self.state.value,
            quotes_written=sum(p.quotes_written for p in parts),
            quotes_deferred=sum(p.quotes_deferred for p in parts),
            quotes_refused=sum(p.quotes_refused for p in parts),
            pending_symbols=self.pending_symbols,
            batches_in_flight=sum(p.batches_in_flight for p in parts),
            round_trips=sum(p.round_trips for p in parts),
            last_round_trip_ms=max(trips) if trips else None,
            reply_errors=sum(p.reply_errors for p in parts),
            redis_outages=sum(p.redis_outages for p in parts),
            notices_published=sum(p.notices_published for p in parts),
            redis_last_error=self.last_error,
        )

    def stats(self) -> dict[str, Any]:
        return asdict(self.snapshot())

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Learn the topology and connect to every primary; keep trying in the background."""
        with contextlib.suppress(RedisClientError):
            await self.refresh()
        if self._watch_task is None:
            self._watch_task = asyncio.create_task(self._watch(), name="redis-cluster-watch")

    async def flush(self, timeout: float = 5.0) -> bool:
        shards = list(self._shards.values())
        done = await asyncio.gather(*(s.flush(timeout) for s in shards))
        return all(done) and not self._redirected

    async def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        for task in (self._watch_task, self._redirect_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watch_task = self._redirect_task = None
        shards, self._shards = list(self._shards.values()), {}
        await asyncio.gather(*(s.close(timeout) for s in shards))

    # -- writing ----------------------------------------------------------------------

    async def write(self, updates: Sequence[PriceUpdate]) -> None:
        """Split ``updates`` by primary and write each share; waits at most the timeout."""
        if not updates:
            return
        route = self._route
        latest = self._latest
        groups: dict[ShardSink | None, list[PriceUpdate]] = {}
        for update in updates:
            symbol = update[0]
            latest[symbol] = update
            shard = route.get(symbol) or self._route_symbol(symbol)
            group = groups.get(shard)
            if group is None:
                groups[shard] = [update]
            else:
                group.append(update)
        for shard, group in groups.items():
            if shard is None:  # no topology yet, or the slot has no primary
                self._hold(group)
            else:
                await shard.write(group)

    def _route_symbol(self, symbol: str) -> ShardSink | None:
        owner = self._owner
        # A topic (AAPL, trades:AAPL, bars:AAPL) hashes by its symbol, the names' hash tag.
        slot = key_slot(self._keys.price_key(parse_topic(symbol)[1]).encode())
        shard = owner[slot] if owner else None
        if shard is not None:
            self._route[symbol] = shard
        return shard

    def _hold(self, updates: Iterable[PriceUpdate]) -> None:
        latest = self._latest
        for update in updates:
            if latest.get(update[0]) is update:
                self._redirected[update[0]] = update
        task = self._redirect_task
        if self._redirected and not self._closed and (task is None or task.done()):
            self._redirect_task = asyncio.create_task(self._reroute(), name="redis-cluster-reroute")

    def _on_redirect(self, updates: list[PriceUpdate], error: str) -> None:
        logger.info("%d writes redirected (%s); asking the cluster its slots", len(updates), error)
        for update in updates:
            self._route.pop(update[0], None)
        self._hold(updates)

    async def _reroute(self) -> None:
        """Refresh the topology and send the redirected updates to their owners, until none."""
        delay = _REDIRECT_DELAY
        while self._redirected and not self._closed:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
            with contextlib.suppress(RedisClientError):
                await self.refresh()
            held = list(self._redirected.values())
            self._redirected.clear()
            latest = self._latest
            await self.write([u for u in held if latest.get(u[0]) is u])

    def resend_latest(self) -> int:
        return sum(shard.resend_latest() for shard in self._shards.values())

    def forget(self, symbols: Iterable[str]) -> None:
        wanted = list(symbols)
        for shard in self._shards.values():
            shard.forget(wanted)
        for symbol in wanted:
            self._latest.pop(symbol, None)
            self._redirected.pop(symbol, None)

    def forget_all(self) -> None:
        """A new epoch begins: never rewrite a record of the one before (docs/leadership.md)."""
        for shard in self._shards.values():
            shard.forget_all()
        self._latest.clear()
        self._redirected.clear()

    def publish_status(self, event: str, details: Mapping[str, Any]) -> None:
        """A notice on ``market_data.status``: classic PUBLISH, which every node relays."""
        shards = sorted(self._shards.values(), key=lambda s: _SEVERITY[s.state])
        if shards:
            shards[0].publish_status(event, details)
        else:
            logger.warning("status notice %s dropped: no primary known yet", event)

    def publish_status_after_writes(self, event: str, details: Mapping[str, Any]) -> None:
        """The gap fill's notice. Its prices went to several primaries, whose events no one
        connection orders: it goes as :meth:`publish_status` (after this shard's SETs)."""
        self.publish_status(event, details)

    def _notice(self, event: str, details: Mapping[str, Any]) -> None:
        listener = self.notice_listener
        if listener is not None:
            listener(event, details)

    # -- topology ---------------------------------------------------------------------

    async def refresh(self) -> None:
        """Ask the cluster which primary owns each slot; apply what changed."""
        async with self._refresh_lock:
            try:
                topology = await self._client.topology(refresh=self._topology is not None)
            except RedisClientError as exc:
                self.last_topology_error = str(exc)
                raise
            self.last_topology_error = None
            self.topology_refreshes += 1
            if topology == self._topology:
                return
            await self._apply(topology)

    async def _apply(self, topology: Topology) -> None:
        primaries = set(topology.primaries())
        gone = [s for a, s in self._shards.items() if a not in primaries]
        for address in sorted(primaries - set(self._shards)):
            shard = ShardSink(
                address,
                self._client.cluster.node(*address),
                self._ttl,
                keys=self._keys,
                on_redirect=self._on_redirect,
                round_trips=self._round_trips,
                write_timeout=self._write_timeout,
                max_in_flight=self._max_in_flight,
                guard=self._guard,
            )
            shard.notice_listener = self._notice
            self._shards[address] = shard
            await shard.start()
        self._topology = topology
        self._owner = [None if a is None else self._shards[a] for a in topology.owners]
        self._route = {}
        logger.info("redis cluster: %d primaries (%s)", len(primaries),
                    ", ".join(_name(a) for a in sorted(primaries)))  # fmt: skip
        # A primary that lost slots (failover, reshard) hands over what it still holds.
        moved: list[PriceUpdate] = []
        for shard in self._shards.values():
            moved.extend(shard.take_pending())
        for shard in gone:
            del self._shards[shard.address]
            await shard.close(timeout=0.1)
        if moved:
            latest = self._latest
            await self.write([u for u in moved if latest.get(u[0]) is u])

    async def _watch(self) -> None:
        while not self._closed:
            calm = self._shards and all(s.state is SinkState.UP for s in self._shards.values())
            await asyncio.sleep(_WATCH_CALM if calm else _WATCH_FAULT)
            try:
                await self.refresh()
            except RedisClientError as exc:
                logger.debug("cluster topology refresh failed: %s", exc)


def _name(address: Address) -> str:
    return f"{address[0]}:{address[1]}"
