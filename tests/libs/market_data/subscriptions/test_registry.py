"""SubscriptionRegistry: sources, persistence in a real Redis, restore after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from libs.market_data import AlpacaMarketDataStream
from libs.market_data.subscriptions.registry import (
    SUBSCRIPTIONS_KEY,
    SubscriptionRegistry,
    SubscriptionSource,
)
from libs.redis_client import EventPublisher, RedisClient, RedisConnectionParams

MANUAL, POSITIONS = SubscriptionSource.MANUAL, SubscriptionSource.POSITIONS


def new_stream(client: RedisClient) -> AlpacaMarketDataStream:
    # Never started: the registry's contract with the stream is its desired set.
    return AlpacaMarketDataStream("k", "s", client, EventPublisher(client=client))


async def test_a_symbol_stays_while_any_source_holds_it(redis_client: RedisClient) -> None:
    stream = new_stream(redis_client)
    registry = SubscriptionRegistry(stream, redis_client)
    assert await registry.add(["aapl", "MSFT"], MANUAL) == ["AAPL", "MSFT"]
    assert await registry.add(["AAPL", "TSLA"], POSITIONS) == ["AAPL", "TSLA"]
    assert registry.sources() == {
        "AAPL": ["manual", "positions"],
        "MSFT": ["manual"],
        "TSLA": ["positions"],
    }
    assert await registry.remove(["AAPL", "TSLA", "MSFT"], POSITIONS) == ["AAPL", "TSLA"]
    assert stream.get_subscribed_symbols() == ["AAPL", "MSFT"]  # AAPL kept: held by hand
    assert await registry.remove(["AAPL"], MANUAL) == ["AAPL"]
    assert stream.get_subscribed_symbols() == ["MSFT"]
    assert registry.symbols(MANUAL) == ["MSFT"]
    assert await registry.remove(["NVDA"], MANUAL) == []


async def test_restart_restores_the_same_symbols_and_sources(redis_client: RedisClient) -> None:
    first = SubscriptionRegistry(new_stream(redis_client), redis_client)
    await first.add(["AAPL", "BRK.B"], MANUAL)
    await first.add(["AAPL", "TSLA"], POSITIONS)
    await first.remove(["BRK.B"], MANUAL)
    assert await redis_client.hgetall(SUBSCRIPTIONS_KEY) == {
        "AAPL": "manual,positions",
        "TSLA": "positions",
    }
    stream = new_stream(redis_client)
    second = SubscriptionRegistry(stream, redis_client)
    assert await second.restore() == ["AAPL", "TSLA"]
    assert stream.get_subscribed_symbols() == ["AAPL", "TSLA"]
    assert second.sources() == first.sources()


async def test_bad_stored_entries_are_ignored(redis_client: RedisClient) -> None:
    await redis_client.hset(
        SUBSCRIPTIONS_KEY, {"AAPL": "manual", "not a ticker": "manual", "MSFT": "bogus"}
    )
    stream = new_stream(redis_client)
    assert await SubscriptionRegistry(stream, redis_client).restore() == ["AAPL"]


async def test_changes_made_while_redis_is_down_are_saved_when_it_is_back(
    redis_factory: Callable[..., object],
) -> None:
    server = redis_factory()
    params: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    client = RedisClient(params=params)
    try:
        registry = SubscriptionRegistry(new_stream(client), client)
        assert await registry.restore() == []
        await registry.add(["AAPL"], MANUAL)
        await asyncio.to_thread(server.kill)  # type: ignore[attr-defined]
        await registry.add(["MSFT"], MANUAL)  # subscribes anyway; saving fails
        assert not registry.persisted
        await asyncio.to_thread(server.restart)  # type: ignore[attr-defined]
        # Restarted without persistence: the check finds the hash gone and rewrites it.
        assert await registry.reconcile() == "lost"
        assert registry.persisted
        assert await client.hgetall(SUBSCRIPTIONS_KEY) == {"MSFT": "manual"} | {"AAPL": "manual"}
    finally:
        await client.close()
