"""BulkPubSub against a real redis-server: every message once, in order, whatever the
read boundaries; subscriptions confirmed before open() returns; a lost connection is
an error the subscriber knows (LOST), never a silent end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis

from libs.market_data import PriceSubscriber
from libs.market_data.backoff import BackoffPolicy
from libs.market_data.consumers.bulk_pubsub import BulkPubSub
from libs.market_data.consumers.standalone_link import LOST
from libs.market_data.exceptions import SubscriberError
from libs.redis_client import RedisConnectionParams
from tests.fixtures.write_path import SYMBOLS, Collector, writer
from tests.libs.market_data.consumers.test_subscriber import converged

pytestmark = pytest.mark.timeout(30)


async def drain(pubsub: BulkPubSub, count: int) -> list[dict[str, object]]:
    """The next ``count`` messages that are not confirmations."""
    got: list[dict[str, object]] = []
    while len(got) < count:
        message = await pubsub.get_message(2.0)
        assert message is not None, f"only {len(got)} of {count} messages came"
        if message["type"] in ("message", "pmessage"):
            got.append(message)
    return got


async def test_messages_in_order_with_redis_pys_shape(redis_params: RedisConnectionParams) -> None:
    pubsub = BulkPubSub(redis_params)
    await pubsub.open(["status"], ["price.updated.*"])
    # Subscribed once open() returned: nothing published from here on can be missed.
    publisher = redis.Redis(**redis_params.redis_kwargs())
    try:
        pipe = publisher.pipeline(transaction=False)
        # Large payloads: messages straddle the socket's reads.
        payloads = [str(i).encode() * (1 + i % 5000) for i in range(3000)]
        for i, payload in enumerate(payloads):
            pipe.publish(f"price.updated.S{i % 7}", payload)
        pipe.publish("status", b"notice")
        pipe.execute()
    finally:
        publisher.close()
    got = await drain(pubsub, len(payloads) + 1)
    assert [m["data"] for m in got[:-1]] == payloads
    assert got[0] == {
        "type": "pmessage",
        "pattern": b"price.updated.*",
        "channel": b"price.updated.S0",
        "data": payloads[0],
    }
    assert got[-1] == {"type": "message", "pattern": None, "channel": b"status", "data": b"notice"}
    assert await pubsub.get_message(0.05) is None  # nothing more: a timeout, not an error
    await pubsub.aclose()


async def test_open_returns_once_redis_confirmed_the_subscriptions(
    redis_params: RedisConnectionParams,
) -> None:
    # Redis holds every command for 0.3 s: open() may only return after that, with the
    # confirmations in hand (the subscriber reads the cache next, and must not miss a
    # message published in between).
    admin = redis.Redis(**redis_params.redis_kwargs())
    try:
        admin.client_pause(300)
    finally:
        admin.close()
    pubsub = BulkPubSub(redis_params)
    await pubsub.open(["status", "price.updated.AAPL"], ["price.updated.*"])
    kinds = [await pubsub.get_message(0) for _ in range(3)]
    assert [m["type"] if m else None for m in kinds] == ["subscribe", "subscribe", "psubscribe"]
    await pubsub.aclose()


async def test_a_killed_connection_is_lost(redis_params: RedisConnectionParams) -> None:
    pubsub = BulkPubSub(redis_params)
    await pubsub.open(["status"], [])
    admin = redis.Redis(**redis_params.redis_kwargs())
    try:
        assert admin.client_kill_filter(_type="pubsub") >= 1
    finally:
        admin.close()
    with pytest.raises(LOST):
        while True:  # the confirmation may still be queued
            await pubsub.get_message(2.0)
    await pubsub.aclose()
    with pytest.raises(LOST):
        await pubsub.get_message(0.1)


async def test_a_password_and_a_unix_socket(redis_factory: Callable[..., object]) -> None:
    # The pub/sub connection authenticates like the writer's (the same handshake).
    server = redis_factory(password="s3cret-pw", unix_socket=True)
    params: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    assert params.unix_socket_path and params.password
    async with writer(params) as w:
        await w.frame()
        assert await w.sink.flush(5)
        async with PriceSubscriber(params, symbols="*") as sub:
            collector = Collector(sub)
            for _ in range(50):
                await w.frame()
                await asyncio.sleep(0)
            assert await w.sink.flush(5)
            await converged(sub, params)
            await collector.stop()
    assert collector.resyncs() == []
    assert sub.latest(SYMBOLS[0]) is not None


async def test_a_wrong_password_is_a_failed_connection_then_a_subscriber_error(
    redis_factory: Callable[..., object],
) -> None:
    # As with redis-py before: refused credentials are retried with the backoff, and the
    # subscriber gives up with its own error, the password nowhere in it.
    server = redis_factory(password="right-pw")
    params: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    wrong = RedisConnectionParams(host=params.host, port=params.port, password="wrong-pw")
    sub = PriceSubscriber(
        wrong, symbols=["AAPL"], backoff=BackoffPolicy(base=0.01, maximum=0.01, max_attempts=2)
    )
    with pytest.raises(SubscriberError) as raised:
        await sub.connect()
    assert "wrong-pw" not in str(raised.value)
    await sub.close()
