"""The Redis side of the pipeline on a Redis Cluster: one price sink per primary.

Each frame's updates are split by the owner of their symbol's slot (the symbol is the
hash tag: ``price:{AAPL}`` and ``price.updated.{AAPL}`` share it), and each primary's
share goes to that primary's :class:`ShardSink` as one pipelined write. A symbol's
``SET`` and its ``SPUBLISH`` go to the same primary, the event once the ``SET`` landed:
cache before event holds per symbol, as on one Redis (docs/cluster.md).

The topology (slot -> primary) comes from the cluster through redis-py; it is asked
again when a write is redirected (``-MOVED``/``-ASK``: the slot moved) and on a timer
(:mod:`~libs.market_data.pipeline.cluster_topology`). When it changes, what a primary
that lost slots still holds is sent to the new owners. The health read-outs are summed
up from the primaries in :mod:`~libs.market_data.pipeline.cluster_status`.
Throughout, only a symbol's newest update is ever rewritten, so nothing is reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Final

from libs.market_data import defaults
from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.cluster_replaced import busiest, recovered_details
from libs.market_data.pipeline.cluster_status import (
    SEVERITY,
    Address,
    address_name,
    cluster_problem,
    cluster_stats,
    first_error,
    worst,
)
from libs.market_data.pipeline.cluster_topology import SlotRouter, TopologyWatch
from libs.market_data.pipeline.condition import Episode, SinkState
from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.pipeline.shard_sink import ShardSink
from libs.market_data.pipeline.stats import SinkStats
from libs.redis_client.cluster import ClusterRedisClient, Topology
from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.writer import ConnectionGuard
from libs.telemetry import ROUND_TRIP_BUCKETS, Histogram

__all__ = ["ClusterPriceSink"]

logger = logging.getLogger(__name__)

_REDIRECT_DELAY: Final = 0.005  # first retry of redirected writes; doubles to 0.2 s


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
        self._topology = TopologyWatch(client, self._apply, self._calm)
        self._router = SlotRouter(keys)
        self._latest: dict[str, PriceUpdate] = {}
        self._redirected: dict[str, PriceUpdate] = {}  # newest per symbol, to re-route
        self._round_trips = Histogram(ROUND_TRIP_BUCKETS)
        self._redirect_task: asyncio.Task[None] | None = None
        self._closed = False
        # Told of every notice (the gap fill); each primary's sink calls it through us.
        self.notice_listener: Callable[[str, Mapping[str, Any]], None] | None = None

    # -- state ----------------------------------------------------------------------

    @property
    def shards(self) -> dict[Address, ShardSink]:
        return dict(self._shards)

    @property
    def last_topology_error(self) -> str | None:
        return self._topology.last_error

    @property
    def topology_refreshes(self) -> int:
        return self._topology.refreshes

    @property
    def state(self) -> SinkState:
        if self._closed:
            return SinkState.CLOSED
        if not self._shards:
            return SinkState.DOWN if self.last_topology_error else SinkState.STARTING
        return worst(s.state for s in self._shards.values())

    @property
    def last_error(self) -> str | None:
        return first_error(self._shards) or self.last_topology_error

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
        return cluster_problem(self._shards, self._topology.current, self.last_topology_error)

    def snapshot(self) -> SinkStats:
        return cluster_stats(
            self._shards.values(),
            connected=self.connected,
            state=self.state,
            pending_symbols=self.pending_symbols,
            last_error=self.last_error,
        )

    def stats(self) -> dict[str, Any]:
        return asdict(self.snapshot())

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Learn the topology and connect to every primary; keep trying in the background."""
        with contextlib.suppress(RedisClientError):
            await self.refresh()
        self._topology.start()

    async def flush(self, timeout: float = 5.0) -> bool:
        shards = list(self._shards.values())
        done = await asyncio.gather(*(s.flush(timeout) for s in shards))
        return all(done) and not self._redirected

    async def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        await self._topology.stop()
        task, self._redirect_task = self._redirect_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        shards, self._shards = list(self._shards.values()), {}
        await asyncio.gather(*(s.close(timeout) for s in shards))

    # -- writing ----------------------------------------------------------------------

    async def write(self, updates: Sequence[PriceUpdate]) -> None:
        """Split ``updates`` by primary and write each share; waits at most the timeout."""
        if not updates:
            return
        router = self._router
        route = router.route
        latest = self._latest
        groups: dict[ShardSink | None, list[PriceUpdate]] = {}
        for update in updates:
            symbol = update[0]
            latest[symbol] = update
            shard = route.get(symbol) or router.locate(symbol)
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
        self._router.moved(update[0] for update in updates)
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
        shards = sorted(self._shards.values(), key=lambda s: SEVERITY[s.state])
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
        await self._topology.refresh()

    def _calm(self) -> bool:
        return bool(self._shards) and all(s.state is SinkState.UP for s in self._shards.values())

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
        self._router.rebuild([None if a is None else self._shards[a] for a in topology.owners])
        logger.info("redis cluster: %d primaries (%s)", len(primaries),
                    ", ".join(address_name(a) for a in sorted(primaries)))  # fmt: skip
        # A primary that lost slots (failover, reshard) hands over what it still holds.
        moved: list[PriceUpdate] = []
        for shard in self._shards.values():
            moved.extend(shard.take_pending())
        replaced: list[tuple[Address, Episode]] = []
        for shard in gone:
            del self._shards[shard.address]
            episode = shard.open_episode()
            if episode is not None:
                replaced.append((shard.address, episode))
            await shard.close(timeout=0.1)
        latest = self._latest
        rewritten = [u for u in moved if latest.get(u[0]) is u]
        if rewritten:
            await self.write(rewritten)
        for address, episode in replaced:
            self._replaced_recovered(address, episode, rewritten)

    def _replaced_recovered(
        self, address: Address, episode: Episode, rewritten: Sequence[PriceUpdate]
    ) -> None:
        """A primary in a fault was replaced (its replica promoted): its own sink is gone
        and can never close the episode, so the cluster sink does, after the rewrites it
        handed over (docs/cluster.md, "A primary goes away")."""
        logger.info("redis cluster: primary %s replaced; %d symbols rewritten on its successor",
                    address_name(address), len(rewritten))  # fmt: skip
        details = recovered_details(address, episode, rewritten)
        owner = busiest(self._router.route, rewritten)
        if owner is not None:  # after the successor's writes landed, as a sink's own would
            owner.publish_status_after_writes("redis.recovered", details)
        else:
            self.publish_status("redis.recovered", details)
