"""RedisPriceSink: cache before event, and a Redis outage in the middle of a stream."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from decimal import Decimal

import redis

from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.pipeline.sink import RedisPriceSink
from libs.redis_client import RedisConnectionParams
from tests.fixtures.monitor import monitor
from tests.helpers import eventually

_instants = itertools.count()


def update(symbol: str, mid: str) -> PriceUpdate:
    # Each update a later instant, as on the wire: the MONITOR check judges by instant.
    stamp = f"2026-01-02T15:00:00.{next(_instants):06d}Z"
    price = json.dumps({"symbol": symbol, "mid": mid, "timestamp": stamp}).encode()
    event = {"event_type": "price.updated", "symbol": symbol, "price": mid, "timestamp": stamp}
    return (symbol, price, json.dumps(event).encode())


def cached_mid(client: redis.Redis, symbol: str) -> str | None:
    raw = client.get(f"price:{symbol}")
    return None if raw is None else str(json.loads(raw)["mid"])


async def test_cache_is_written_before_the_event_is_published(
    redis_params: RedisConnectionParams,
) -> None:
    # A subscriber that reads the cache on each event must see that price or a newer one.
    reader = redis.asyncio.Redis(**{**redis_params.redis_kwargs(), "socket_timeout": None})
    pubsub = reader.pubsub()
    await pubsub.subscribe("price.updated.AAPL")
    seen: list[tuple[str, str | None]] = []

    async def consume() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                event = json.loads(message["data"])
                raw = await reader.get("price:AAPL")
                seen.append((event["price"], None if raw is None else json.loads(raw)["mid"]))

    task = asyncio.create_task(consume())
    sink = RedisPriceSink(redis_params, ttl=60)
    await sink.start()
    try:
        # Redis's own record of what it executed: each event after its price's SET. A
        # subscriber alone cannot tell, as the writes outrun its reads.
        async with monitor(redis_params) as log:
            for i in range(100):
                await sink.write([update("AAPL", str(Decimal(i)))])
            await eventually(lambda: len(seen) == 100, what="100 events")
        assert len(log.events()) == 100
        assert log.phantom_events() == []
    finally:
        await sink.close()
        task.cancel()
        await pubsub.aclose()
        await reader.aclose()
    for event_mid, cache_mid in seen:
        assert cache_mid is not None and Decimal(cache_mid) >= Decimal(event_mid)


async def test_redis_outage_keeps_newest_per_symbol_and_converges_when_back(
    redis_factory: Callable[..., object],
) -> None:
    server = redis_factory()
    params: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    sink = RedisPriceSink(params, ttl=60)
    await sink.start()
    admin = redis.Redis(**params.redis_kwargs())
    try:
        await sink.write([update("AAPL", "1"), update("MSFT", "1")])
        assert await sink.flush(5)
        await asyncio.to_thread(server.kill)  # type: ignore[attr-defined]
        # Keep streaming through the outage: 3 symbols x 1000 updates.
        for i in range(1000):
            await sink.write([update(s, str(i)) for s in ("AAPL", "MSFT", "GOOGL")])
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        await eventually(lambda: not sink.connected, what="outage noticed")
        assert sink.pending_symbols == 3  # bounded by symbols, not by updates
        assert sink.stats()["redis_connected"] is False
        await asyncio.to_thread(server.restart)  # type: ignore[attr-defined]
        restarted = asyncio.get_running_loop().time()
        await eventually(
            lambda: all(cached_mid(admin, s) == "999" for s in ("AAPL", "MSFT", "GOOGL")),
            timeout=5,
            what="newest prices rewritten",
        )
        assert asyncio.get_running_loop().time() - restarted < 3.0  # the promise: 3 s
        assert sink.pending_symbols == 0
        assert sink.stats()["redis_outages"] >= 1
        await sink.write([update("AAPL", "1000")])
        assert await sink.flush(5)
        assert cached_mid(admin, "AAPL") == "1000"
    finally:
        admin.close()
        await sink.close()


async def test_starts_even_when_redis_is_not_up_yet(redis_factory: Callable[..., object]) -> None:
    server = redis_factory()
    params: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    await asyncio.to_thread(server.kill)  # type: ignore[attr-defined]
    sink = RedisPriceSink(params, ttl=60)
    await sink.start()
    try:
        assert not sink.connected
        await sink.write([update("AAPL", "5")])
        await asyncio.to_thread(server.restart)  # type: ignore[attr-defined]
        admin = redis.Redis(**params.redis_kwargs())
        try:
            await eventually(lambda: cached_mid(admin, "AAPL") == "5", what="written when up")
        finally:
            admin.close()
    finally:
        await sink.close()
