"""A Redis Cluster sink's health, summed up from its primaries' sinks.

Pure reads of state the shards already hold, for ``/health`` and ``/metrics``: the worst
state among the primaries, the first error, the problems by shard with the slots each
one serves, and one :class:`~libs.market_data.pipeline.stats.SinkStats` over them all
(docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from libs.market_data.pipeline.condition import SinkState
from libs.market_data.pipeline.shard_sink import ShardSink
from libs.market_data.pipeline.stats import SinkStats
from libs.redis_client.cluster import Topology

__all__ = [
    "SEVERITY",
    "Address",
    "address_name",
    "cluster_problem",
    "cluster_stats",
    "first_error",
    "worst",
]

Address = tuple[str, int]

# Worst last: the cluster sink reports its worst primary, and sends notices on its best.
SEVERITY: Final = {
    SinkState.UP: 0,
    SinkState.STARTING: 1,
    SinkState.REFUSED: 2,
    SinkState.UNRESPONSIVE: 3,
    SinkState.DOWN: 4,
    SinkState.CLOSED: 5,
}


def address_name(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


def worst(states: Iterable[SinkState]) -> SinkState:
    """The most severe of ``states`` (there must be one)."""
    return max(states, key=SEVERITY.__getitem__)


def first_error(shards: Mapping[Address, ShardSink]) -> str | None:
    """The first primary's error, named by its address; None if none has one."""
    for shard in shards.values():
        if shard.last_error is not None:
            return f"{address_name(shard.address)}: {shard.last_error}"
    return None


def cluster_problem(
    shards: Mapping[Address, ShardSink], topology: Topology | None, topology_error: str | None
) -> str | None:
    """Which shard is not taking writes and why, and slots without a primary; None if fine."""
    problems = []
    for address, shard in sorted(shards.items()):
        issue = shard.problem()
        if issue is not None:
            slots = topology.slot_ranges(address) if topology is not None else "?"
            problems.append(f"shard {address_name(address)} (slots {slots}): {issue}")
    if topology is not None and None in topology.owners:
        problems.append(f"{topology.owners.count(None)} slots have no primary")
    if not shards and topology_error:
        problems.append(f"cluster topology unknown: {topology_error}")
    return "; ".join(problems) or None


def cluster_stats(
    shards: Iterable[ShardSink],
    *,
    connected: bool,
    state: SinkState,
    pending_symbols: int,
    last_error: str | None,
) -> SinkStats:
    """One record over every primary's sink: counters summed, the slowest round trip."""
    parts = [s.snapshot() for s in shards]
    trips = [p.last_round_trip_ms for p in parts if p.last_round_trip_ms is not None]
    return SinkStats(
        redis_connected=connected,
        redis_state=state.value,
        quotes_written=sum(p.quotes_written for p in parts),
        quotes_deferred=sum(p.quotes_deferred for p in parts),
        quotes_refused=sum(p.quotes_refused for p in parts),
        pending_symbols=pending_symbols,
        batches_in_flight=sum(p.batches_in_flight for p in parts),
        round_trips=sum(p.round_trips for p in parts),
        last_round_trip_ms=max(trips) if trips else None,
        reply_errors=sum(p.reply_errors for p in parts),
        redis_outages=sum(p.redis_outages for p in parts),
        notices_published=sum(p.notices_published for p in parts),
        redis_last_error=last_error,
    )
