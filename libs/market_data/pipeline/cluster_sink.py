"""The Redis side of the pipeline on a Redis Cluster: one price sink per primary.

Each frame's updates are split by the owner of their symbol's slot (the symbol is the
hash tag: ``price:{AAPL}`` and ``price.updated.{AAPL}`` share it), and each primary's
share goes to that primary's :class:`ShardSink` as one pipelined write. A symbol's
``SET`` and its ``SPUBLISH`` go to the same primary, the event once the ``SET`` landed:
cache before event holds per symbol, as on one Redis (docs/cluster.md).

The topology (slot -> primary) comes from the cluster through redis-py; it is asked
again when a write is redirected (``-MOVED``/``-ASK``: the slot moved) and on a timer
(:mod:`~libs.market_data.pipeline.cluster_topology`). Redirected writes wait in
:mod:`~libs.market_data.pipeline.cluster_redirects` for their new owner. When the
topology changes, the primaries' sinks follow it
(:mod:`~libs.market_data.pipeline.cluster_shards`) and what a primary that lost slots
still holds is sent to the new owners. The health read-outs are summed up from the
primaries in :mod:`~libs.market_data.pipeline.cluster_status`.
Throughout, only a symbol's newest update is ever rewritten, so nothing is reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from libs.market_data import defaults
from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.cluster_redirects import RedirectedWrites
from libs.market_data.pipeline.cluster_replaced import busiest, recovered_details
from libs.market_data.pipeline.cluster_shards import Primaries
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
        self._write_timeout = write_timeout
        self._round_trips = Histogram(ROUND_TRIP_BUCKETS)
        self._router = SlotRouter(keys)
        self._primaries = Primaries(
            client,
            ttl,
            keys=keys,
            router=self._router,
            round_trips=self._round_trips,
            write_timeout=write_timeout,
            max_in_flight=max_in_flight,
            guard=guard,
            on_redirect=self._on_redirect,
            on_notice=self._notice,
        )
        self._topology = TopologyWatch(client, self._apply, self._calm)
        self._latest: dict[str, PriceUpdate] = {}
        self._redirects = RedirectedWrites(
            self._latest, refresh=self.refresh, write=self.write, closed=lambda: self._closed
        )
        self._closed = False
        # Told of every notice (the gap fill); each primary's sink calls it through us.
        self.notice_listener: Callable[[str, Mapping[str, Any]], None] | None = None

    # -- state ----------------------------------------------------------------------

    @property
    def shards(self) -> dict[Address, ShardSink]:
        return dict(self._primaries.sinks)

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
        shards = self._primaries.sinks
        if not shards:
            return SinkState.DOWN if self.last_topology_error else SinkState.STARTING
        return worst(s.state for s in shards.values())

    @property
    def last_error(self) -> str | None:
        return first_error(self._primaries.sinks) or self.last_topology_error

    @property
    def connected(self) -> bool:
        shards = self._primaries.sinks
        return bool(shards) and all(s.connected for s in shards.values())

    @property
    def pending_symbols(self) -> int:
        shards = self._primaries.sinks.values()
        return sum(s.pending_symbols for s in shards) + len(self._redirects)

    @property
    def write_timeout(self) -> float:
        return self._write_timeout

    @property
    def round_trip_seconds(self) -> Histogram:
        return self._round_trips

    def problem(self) -> str | None:
        """Which shard is not taking writes and why, from state already held."""
        shards = self._primaries.sinks
        return cluster_problem(shards, self._topology.current, self.last_topology_error)

    def snapshot(self) -> SinkStats:
        return cluster_stats(
            self._primaries.sinks.values(),
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
        shards = list(self._primaries.sinks.values())
        done = await asyncio.gather(*(s.flush(timeout) for s in shards))
        return all(done) and not self._redirects

    async def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        await self._topology.stop()
        await self._redirects.stop()
        await self._primaries.close(timeout)

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
                logger.debug("%d updates held: their slots have no primary now", len(group))
                self._redirects.hold(group)
            else:
                await shard.write(group)

    def _on_redirect(self, updates: list[PriceUpdate], error: str) -> None:
        logger.info("%d writes redirected (%s); asking the cluster its slots", len(updates), error)
        self._router.moved(update[0] for update in updates)
        self._redirects.hold(updates)

    def resend_latest(self) -> int:
        return sum(shard.resend_latest() for shard in self._primaries.sinks.values())

    def forget(self, symbols: Iterable[str]) -> None:
        wanted = list(symbols)
        for shard in self._primaries.sinks.values():
            shard.forget(wanted)
        for symbol in wanted:
            self._latest.pop(symbol, None)
        self._redirects.forget(wanted)

    def forget_all(self) -> None:
        """A new epoch begins: never rewrite a record of the one before (docs/leadership.md)."""
        for shard in self._primaries.sinks.values():
            shard.forget_all()
        self._latest.clear()
        self._redirects.clear()

    def publish_status(self, event: str, details: Mapping[str, Any]) -> None:
        """A notice on ``market_data.status``: classic PUBLISH, which every node relays."""
        shards = sorted(self._primaries.sinks.values(), key=lambda s: SEVERITY[s.state])
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
        shards = self._primaries.sinks
        return bool(shards) and all(s.state is SinkState.UP for s in shards.values())

    async def _apply(self, topology: Topology) -> None:
        handover = await self._primaries.apply(topology)
        latest = self._latest
        rewritten = [u for u in handover.moved if latest.get(u[0]) is u]
        logger.debug("slot map applied: %d updates handed over, %d still newest",
                     len(handover.moved), len(rewritten))  # fmt: skip
        if rewritten:
            await self.write(rewritten)
        for address, episode in handover.replaced:
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
