"""The cluster sink's primaries: one :class:`ShardSink` each, kept in step with the slots.

When the slot map changes (:mod:`~libs.market_data.pipeline.cluster_topology`),
:class:`Primaries` starts a sink for each new primary, points the router at the slots'
new owners, takes back what every sink still holds (a primary that lost slots, to a
failover or a reshard, holds prices it can no longer write), and closes the sinks of the
primaries that left, keeping the fault episode each of them still had open. The cluster
sink then writes what was taken back on the new owners and closes those episodes
(docs/cluster.md, "A primary goes away").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.cluster_status import Address, address_name
from libs.market_data.pipeline.cluster_topology import SlotRouter
from libs.market_data.pipeline.condition import Episode
from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.pipeline.shard_sink import ShardSink
from libs.redis_client.cluster import ClusterRedisClient, Topology
from libs.redis_client.writer import ConnectionGuard
from libs.telemetry import Histogram

__all__ = ["Handover", "Primaries"]

# The cluster sink's logger: these lines are about its view of the cluster.
logger = logging.getLogger("libs.market_data.pipeline.cluster_sink")


@dataclass(frozen=True, slots=True)
class Handover:
    """What a new slot map left to the cluster sink."""

    # Every update the primaries' sinks still held, to be written on the slots' owners.
    moved: list[PriceUpdate]
    # The primaries that left while in a fault, with the episode no sink will close now.
    replaced: list[tuple[Address, Episode]]


class Primaries:
    """The sink of each primary in the slot map last applied, by address."""

    def __init__(
        self,
        client: ClusterRedisClient,
        ttl: int,
        *,
        keys: KeySpace,
        router: SlotRouter,
        round_trips: Histogram,
        write_timeout: float,
        max_in_flight: int,
        guard: ConnectionGuard | None,
        on_redirect: Callable[[list[PriceUpdate], str], None],
        on_notice: Callable[[str, Mapping[str, Any]], None],
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._keys = keys
        self._router = router
        self._round_trips = round_trips
        self._write_timeout = write_timeout
        self._max_in_flight = max_in_flight
        self._guard = guard
        self._on_redirect = on_redirect
        self._on_notice = on_notice
        self.sinks: dict[Address, ShardSink] = {}

    async def apply(self, topology: Topology) -> Handover:
        """Start, route to and close sinks for this slot map; what they held comes back."""
        primaries = set(topology.primaries())
        gone = [s for a, s in self.sinks.items() if a not in primaries]
        for address in sorted(primaries - set(self.sinks)):
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
            shard.notice_listener = self._on_notice
            self.sinks[address] = shard
            await shard.start()
        self._router.rebuild([None if a is None else self.sinks[a] for a in topology.owners])
        logger.info("redis cluster: %d primaries (%s)", len(primaries),
                    ", ".join(address_name(a) for a in sorted(primaries)))  # fmt: skip
        # A primary that lost slots (failover, reshard) hands over what it still holds.
        moved: list[PriceUpdate] = []
        for shard in self.sinks.values():
            moved.extend(shard.take_pending())
        replaced: list[tuple[Address, Episode]] = []
        for shard in gone:
            del self.sinks[shard.address]
            episode = shard.open_episode()
            if episode is not None:
                replaced.append((shard.address, episode))
            await shard.close(timeout=0.1)
            # Writes it sent that were not answered in time come back to its book as it
            # closes (its SETs may never have landed): they are handed over too. A slot
            # map can even flap (a node that has not heard of a failover answers with the
            # old one), closing the sink that had just taken the rewrites.
            moved.extend(shard.take_pending())
        return Handover(moved, replaced)

    async def close(self, timeout: float) -> None:
        """Close every sink; none is left."""
        shards, self.sinks = list(self.sinks.values()), {}
        await asyncio.gather(*(s.close(timeout) for s in shards))
