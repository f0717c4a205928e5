"""Leader election on a 3-primary Redis Cluster (docs/leadership.md, "On a Redis Cluster"):
``market-data serve`` processes with ``LEADER_ELECTION=redis`` and ``REDIS_CLUSTER_NODES``
on the simulator.

- SIGSTOP the leader past its lease, let the standby take over and stream, SIGCONT: no
  write of the old epoch lands after the first of the new one, on any primary (their
  ``MONITOR`` records on one clock), in any event a sharded subscriber got on any shard,
  or in the cache on any shard;
- kill -9 the leader while streaming: the standby takes over, resubscribes, and every
  shard's cache converges on the latest quotes of the new epoch.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from apps.simulator import AlpacaSimulator
from libs.redis_client.cluster import ClusterParams
from libs.redis_embedded import EmbeddedRedis
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from tests.faults.cluster_leaders import (
    KEYS,
    cached,
    cached_epochs,
    monitor_primaries,
    shard_events,
)
from tests.faults.harness import RATE, Harness
from tests.faults.leaders import Group, Member
from tests.helpers import eventually, eventually_blocking

__all__: list[str] = []

# Two symbols on each of the shared cluster's three primaries (slots split evenly).
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "TSLA", "AMZN", "JPM"]


async def _group(
    simulator_factory: Callable[..., Any],
    redis_factory: Callable[..., EmbeddedRedis],
    cluster: EmbeddedRedisCluster,
    tmp_path: Path,
    **sim: Any,
) -> Group:
    simulator: AlpacaSimulator = await simulator_factory(**sim)
    # The harness's own Redis stays idle: every instance runs on the cluster (env below).
    harness = Harness(sim=simulator, redis_server=redis_factory())
    first = cluster.nodes[0]
    return Group(
        harness,
        tmp_path,
        env={
            "REDIS_CLUSTER_NODES": cluster.nodes_spec,
            "REDIS_HOST": first.host,
            "REDIS_PORT": str(first.port),
        },
    )


@pytest.fixture
async def group(
    simulator_factory: Callable[..., Any],
    redis_factory: Callable[..., EmbeddedRedis],
    redis_cluster: EmbeddedRedisCluster,
    cluster_params: ClusterParams,  # every primary emptied first
    tmp_path: Path,
) -> AsyncIterator[Group]:
    """Two instances' group on the shared cluster; the simulator takes any number of
    connections (a SIGSTOPped leader keeps its socket; this is about fencing, not 406)."""
    members = await _group(
        simulator_factory, redis_factory, redis_cluster, tmp_path, connection_limit=None
    )
    try:
        yield members
    finally:
        await members.stop()


def _spread(cluster: EmbeddedRedisCluster) -> None:
    owners = {cluster.owner_of(_slot(s)).port for s in SYMBOLS}
    assert len(owners) == 3, "the symbols must cover every primary"


def _slot(symbol: str) -> int:
    return key_slot(KEYS.price_key(symbol).encode())


async def _stream(group: Group, cluster: EmbeddedRedisCluster, via: Member) -> None:
    reply = await via.http.post("/api/v1/subscribe", json={"symbols": SYMBOLS})
    assert reply.status_code == 201, reply.text
    group.harness.sim.set_rate(RATE, batch_size=6)
    await eventually_blocking(
        lambda: all(cached(cluster, s) is not None for s in SYMBOLS),
        timeout=15,
        what="prices cached on every shard",
    )


@pytest.mark.timeout(150)
async def test_sigstop_past_the_lease_then_sigcont_writes_nothing_of_the_old_epoch(
    group: Group, redis_cluster: EmbeddedRedisCluster
) -> None:
    _spread(redis_cluster)
    first, second = await group.leader_and_standby()
    await _stream(group, redis_cluster, first)
    old = str((await group.wait(first, "leader"))["leadership"]["epoch"])
    async with monitor_primaries(redis_cluster, SYMBOLS) as record:
        await eventually(lambda: record.count(old) > 0, timeout=10, what="old events heard")
        first.signal(signal.SIGSTOP)
        new = str((await group.wait(second, "leader"))["leadership"]["epoch"])
        await eventually(lambda: record.count(new) > 0, timeout=15, what="new events")
        first.signal(signal.SIGCONT)
        # The old leader runs again: it handles what its socket buffered, tries to write
        # it on every primary, finds itself fenced, and steps down.
        body = await group.wait(first, "standby", healthy=False, within=30)
        seen = record.count(new)
        await eventually(
            lambda: record.count(new) > seen + 50, timeout=15, what="the new leader streaming on"
        )
        group.harness.sim.set_rate(0.0)
        await eventually(
            lambda: len(shard_events(record)) == 3, timeout=10, what="events from every shard"
        )
    assert record.errors == []
    assert body["leadership"]["leader_id"] in (None, "b")
    late = record.late(old, new)
    assert late == [], f"{len(late)} writes of epoch {old} after epoch {new} began: {late[:3]}"
    assert {w.node for w in record.writes if w.epoch == new} == set(shard_events(record))
    assert record.late_events(old, new) == []
    assert cached_epochs(redis_cluster, SYMBOLS) == {new}
    assert (await group.roles()) == {"a": "standby", "b": "leader"}


def _converged(group: Group, cluster: EmbeddedRedisCluster, epoch: str) -> bool:
    sim = group.harness.sim
    for symbol in SYMBOLS:
        record = cached(cluster, symbol)
        last = sim.last_quotes.get(symbol)
        if record is None or last is None or str(record["epoch"]) != epoch:
            return False
        if Decimal(str(record["mid"])) != (Decimal(last["bp"]) + Decimal(last["ap"])) / 2:
            return False
    return True


@pytest.mark.timeout(150)
async def test_kill9_leader_standby_takes_over_and_every_shard_converges(
    simulator_factory: Callable[..., Any],
    redis_factory: Callable[..., EmbeddedRedis],
    redis_cluster: EmbeddedRedisCluster,
    cluster_params: ClusterParams,
    tmp_path: Path,
) -> None:
    # The simulator limits one connection per key, as Alpaca does.
    group = await _group(simulator_factory, redis_factory, redis_cluster, tmp_path)
    try:
        first, second = await group.leader_and_standby()
        await _stream(group, redis_cluster, first)
        old = (await group.wait(first, "leader"))["leadership"]["epoch"]
        first.process.kill()
        await asyncio.to_thread(first.process.wait, 10)
        body = await group.wait(second, "leader", within=30)
        new = body["leadership"]["epoch"]
        assert new > old
        sim = group.harness.sim
        await eventually(lambda: sim.subscribed_quotes == set(SYMBOLS), what="resubscribed")
        await eventually_blocking(
            lambda: cached_epochs(redis_cluster, SYMBOLS) == {str(new)},
            timeout=15,
            what="the new epoch on every shard",
        )
        sim.set_rate(0.0)
        await eventually_blocking(
            lambda: _converged(group, redis_cluster, str(new)),
            timeout=10,
            what="every shard's cache on the latest quotes",
        )
    finally:
        await group.stop()
