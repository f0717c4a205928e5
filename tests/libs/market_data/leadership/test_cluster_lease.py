"""The lease's Lua scripts, the writers' guard and the fencing kill on a real Redis Cluster
(3 primaries; docs/leadership.md, "On a Redis Cluster")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.crc import key_slot

from libs.market_data.keys import KeySpace
from libs.market_data.leadership.cluster_fencing import fence_cluster
from libs.market_data.leadership.fencing import EpochGuard, connection_name
from libs.market_data.leadership.redis_lease import RedisLease
from libs.redis_client import RedisClientError
from libs.redis_client.cluster import ClusterParams, ClusterRedisClient
from libs.redis_client.exceptions import RedisFencedError
from libs.redis_client.writer import PipelinedWriter, pack_commands
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from tests.fixtures.cluster import ClusterFactory, params_of
from tests.helpers import eventually, status_notices

KEYS = KeySpace(cluster=True)


@pytest.fixture
async def client(cluster_params: ClusterParams) -> AsyncIterator[ClusterRedisClient]:
    redis_client = ClusterRedisClient(cluster_params)
    try:
        yield redis_client
    finally:
        await redis_client.close()


def test_the_lease_and_its_stamp_share_a_slot() -> None:
    assert key_slot(KEYS.leader_key.encode()) == key_slot(KEYS.epoch_key.encode())
    paper = KeySpace("paper", cluster=True)
    assert key_slot(paper.leader_key.encode()) == key_slot(paper.epoch_key.encode())
    assert KeySpace().leader_key == "market_data:leader"  # standalone names unchanged


async def test_acquire_renew_release_on_a_cluster(client: ClusterRedisClient) -> None:
    a = RedisLease(client, KEYS, "a", ttl=5.0)
    b = RedisLease(client, KEYS, "b", ttl=5.0)
    won = await a.acquire(known_epoch=0)
    assert won.acquired and won.fresh and a.epoch == 1
    held = await b.acquire(known_epoch=0)
    assert not held.acquired and held.holder is not None
    assert (held.holder.instance, held.holder.epoch) == ("a", 1)
    assert await a.renew() and not await b.renew()
    assert await client.get(KEYS.epoch_key) == a.stamp().encode()
    # The release's notice is a classic PUBLISH from the script: every node relays it,
    # so a subscriber on any node hears it.
    async with status_notices(client.cluster.node(*client.cluster.nodes[-1])) as notices:
        assert await a.release({"reason": "test"})
        await eventually(lambda: notices, what="the release notice")
    assert notices[0]["event_type"] == "leader.released" and notices[0]["instance"] == "a"
    again = await b.acquire(known_epoch=1)
    assert again.acquired and not again.fresh and b.epoch == 2
    # A promoted replica without the newest stamp: the epoch still rises past what we saw.
    await client.delete(KEYS.leader_key, KEYS.epoch_key)
    third = await a.acquire(known_epoch=2)
    assert third.acquired and third.fresh and a.epoch == 3


Address = tuple[str, int]
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _named(address: Address, name: str) -> Conn:
    """A plain connection to one node, named as a writer of an epoch would be."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(pack_commands([("CLIENT", "SETNAME", name)]))
    assert await reader.readline() == b"+OK\r\n"
    return reader, writer


async def _alive(conn: Conn) -> bool:
    reader, writer = conn
    writer.write(pack_commands([("PING",)]))
    with contextlib.suppress(ConnectionError):
        return await reader.readline() == b"+PONG\r\n"
    return False


async def test_fencing_kills_older_epochs_on_every_primary(client: ClusterRedisClient) -> None:
    primaries = (await client.topology(refresh=True)).primaries()
    assert len(primaries) == 3
    old = [await _named(a, connection_name("", 4, "old")) for a in primaries]
    newer = await _named(primaries[0], connection_name("", 9, "newer"))
    other = await _named(primaries[1], connection_name("paper", 1, "x"))
    try:
        done = await fence_cluster(client, "", 5)
        assert done.killed == 3 and sorted(done.primaries) == primaries
        assert [await _alive(c) for c in old] == [False, False, False]
        assert await _alive(newer) and await _alive(other)
    finally:
        for _, writer in (*old, newer, other):
            writer.close()


async def test_a_writer_guard_on_another_primary_checks_the_stamp_and_the_lease(
    client: ClusterRedisClient, cluster_params: ClusterParams
) -> None:
    lease = RedisLease(client, KEYS, "a", ttl=30.0)
    assert (await lease.acquire(0)).acquired
    assert lease.epoch is not None
    fenced: list[bool] = []
    guard = EpochGuard(KEYS, "a", lambda: fenced.append(True), reader=client)
    guard.lead(lease.epoch, lease.token)
    # A primary that does not hold the lease's slot: the check reads it elsewhere.
    topology = await client.topology()
    home = topology.owners[key_slot(KEYS.leader_key.encode())]
    elsewhere = next(p for p in topology.primaries() if p != home)
    writer: PipelinedWriter[int] = PipelinedWriter(cluster_params.node(*elsewhere), guard=guard)
    await writer.connect()
    async with redis.asyncio.Redis(**cluster_params.node(*elsewhere).redis_kwargs()) as node:
        names = {c["name"] for c in await node.client_list(_type="normal")}
    assert connection_name("", lease.epoch, "a") in names
    await writer.close()
    # The stamp is ours but the lease ran out (a promoted replica that missed the newer
    # stamp would look like this): refused.
    await client.delete(KEYS.leader_key)
    with pytest.raises(RedisFencedError, match="lease gone"):
        await PipelinedWriter(cluster_params.node(*elsewhere), guard=guard).connect()
    # A newer leader raised the stamp: refused.
    other = RedisLease(client, KEYS, "b", ttl=30.0)
    assert (await other.acquire(lease.epoch)).acquired
    with pytest.raises(RedisFencedError):
        await PipelinedWriter(cluster_params.node(*elsewhere), guard=guard).connect()
    assert fenced == [True, True] and guard.refusals == 2


@pytest.mark.timeout(120)
async def test_a_primary_that_cannot_be_fenced_stops_the_fencing(
    cluster_factory: ClusterFactory,
) -> None:
    cluster: EmbeddedRedisCluster = cluster_factory(primaries=3)
    client = ClusterRedisClient(params_of(cluster))
    try:
        done = await fence_cluster(client, "", 2)
        assert len(done.primaries) == 3
        victim = cluster.primaries()[-1]
        await asyncio.to_thread(victim.kill)  # no replica: its slots stay its own
        with pytest.raises(RedisClientError):
            await fence_cluster(client, "", 3)
    finally:
        await client.close()
