"""The lease's Lua scripts and the fencing kill, on a real redis-server."""

from __future__ import annotations

import asyncio

import redis.asyncio

from libs.market_data.keys import KeySpace
from libs.market_data.leadership.fencing import connection_name
from libs.market_data.leadership.redis_lease import RedisLease, parse_lease
from libs.redis_client import RedisClient
from tests.helpers import eventually, status_notices

KEYS = KeySpace()


async def test_one_holder_and_rising_epochs(redis_client: RedisClient) -> None:
    a = RedisLease(redis_client, KEYS, "a", ttl=5.0)
    b = RedisLease(redis_client, KEYS, "b", ttl=5.0)
    won = await a.acquire(known_epoch=0)
    assert won.acquired and won.fresh and a.epoch == 1
    held = await b.acquire(known_epoch=0)
    assert not held.acquired and held.holder is not None
    assert (held.holder.instance, held.holder.epoch) == ("a", 1)
    assert 0 < held.remaining <= 5.0
    assert await a.renew() and not await b.renew()
    assert await redis_client.get(KEYS.epoch_key) == a.stamp().encode()
    async with status_notices(redis_client.params) as notices:
        assert await a.release({"reason": "test"})
        await eventually(lambda: notices, what="the release notice")
    assert notices[0]["event_type"] == "leader.released" and notices[0]["instance"] == "a"
    assert not await a.renew()  # released: not ours any more
    again = await b.acquire(known_epoch=1)
    assert again.acquired and not again.fresh and b.epoch == 2


async def test_release_by_another_token_does_nothing(redis_client: RedisClient) -> None:
    a = RedisLease(redis_client, KEYS, "a", ttl=5.0)
    stale = RedisLease(redis_client, KEYS, "a", ttl=5.0)
    await stale.acquire(0)
    await redis_client.delete(KEYS.leader_key)  # its lease ran out
    await a.acquire(0)
    assert not await stale.release({}) and not await stale.renew()
    assert await redis_client.exists(KEYS.leader_key)


async def test_epoch_stays_monotonic_when_redis_loses_the_counter(
    redis_client: RedisClient,
) -> None:
    a = RedisLease(redis_client, KEYS, "a", ttl=5.0)
    for _ in range(3):
        assert (await a.acquire(0)).acquired
        await a.release({})
    assert a.epoch is None
    await redis_client.redis.flushall()
    won = await a.acquire(known_epoch=3)  # what the instances remember
    assert won.acquired and won.fresh and a.epoch == 4


async def test_the_lease_runs_out_by_itself(redis_client: RedisClient) -> None:
    a = RedisLease(redis_client, KEYS, "a", ttl=0.05)
    await a.acquire(0)
    b = RedisLease(redis_client, KEYS, "b", ttl=5.0)
    deadline = asyncio.get_running_loop().time() + 5
    while not (await b.acquire(1)).acquired:
        assert asyncio.get_running_loop().time() < deadline, "the lease never ran out"
        await asyncio.sleep(0.01)
    assert b.epoch == 2


async def test_fence_older_kills_older_epochs_of_this_namespace(
    redis_client: RedisClient,
) -> None:
    kwargs = redis_client.params.redis_kwargs()
    names = [
        connection_name("", 1, "x"),
        connection_name("", 2, "y"),
        connection_name("other", 1, "z"),
    ]
    clients = [redis.asyncio.Redis(**kwargs, client_name=n) for n in names]
    try:
        for client in clients:
            await client.ping()
        lease = RedisLease(redis_client, KEYS, "y", ttl=5.0)
        assert await lease.fence_older(2) == 1
        listed = {c["name"] for c in await redis_client.redis.client_list(_type="normal")}
        assert names[0] not in listed and {names[1], names[2]} <= listed
    finally:
        for client in clients:
            await client.aclose()


def test_parse_lease() -> None:
    holder = parse_lease(b"12 web-1 abcd")
    assert holder is not None and (holder.epoch, holder.instance) == (12, "web-1")
    assert parse_lease("garbage") is None
