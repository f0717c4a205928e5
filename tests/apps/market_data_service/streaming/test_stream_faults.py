"""A WebSocket consumer of ``/api/v1/stream`` converges on the exact latest prices, and is
told of each gap (``resync``), after every fault the library's subscriber lives through.

The prices come from the service's own write path (``QuoteProcessor`` + ``RedisPriceSink``,
``tests/fixtures/write_path.py``), so each fault is injected at a known point; the
service under test serves the stream from the same real redis-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis

from libs.redis_client import RedisConnectionParams
from tests.apps.market_data_service.streaming.streamclient import StreamClient, ws_url
from tests.fixtures.service import Service, ServiceFactory
from tests.fixtures.write_path import SYMBOLS, cached, writer
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(90)


def same_as_cache(client: StreamClient, params: RedisConnectionParams) -> bool:
    for symbol in SYMBOLS:
        want, got = cached(params, symbol), client.latest.get(symbol)
        if got is None:
            return False
        if (got["bid"], got["ask"], got["mid"], got["seq"], got["epoch"]) != (
            str(want.bid), str(want.ask), str(want.mid), want.seq, want.epoch,
        ):  # fmt: skip
            return False
    return True


async def converged(client: StreamClient, params: RedisConnectionParams) -> None:
    await eventually(lambda: same_as_cache(client, params), 20, "the exact latest prices")
    assert client.close_code is None, (client.close_code, client.close_reason)
    assert never_back_in_time(client.messages)


def never_back_in_time(messages: list[dict[str, Any]]) -> bool:
    """Within an epoch, each price's seq is above the last one seen of its symbol."""
    last: dict[str, tuple[str, int]] = {}
    for message in messages:
        data = message.get("data")
        if data is None:
            continue
        key = (data["epoch"], data["seq"])
        before = last.get(data["symbol"])
        if message["type"] == "price" and before and before[0] == key[0]:
            assert key[1] > before[1], (data["symbol"], before, key)
        last[data["symbol"]] = key
    return True


def reasons(client: StreamClient) -> list[str]:
    return [m["reason"] for m in client.of("resync")]


async def connected_client(service: Service) -> StreamClient:
    client = await StreamClient.open(ws_url(service.url))
    await client.subscribe(*SYMBOLS)
    await client.wait_for("subscriptions")
    return client


async def test_hub_connection_killed(
    redis_params: RedisConnectionParams, start_service: ServiceFactory
) -> None:
    service = await start_service()
    async with writer(redis_params) as w:
        await w.frame()
        assert await w.sink.flush(5)
        client = await connected_client(service)
        admin = redis.Redis(**redis_params.redis_kwargs())
        try:
            for _ in range(100):
                await w.frame()
                await asyncio.sleep(0)
            assert await w.sink.flush(5)
            assert admin.client_kill_filter(_type="pubsub") >= 1  # the hub's
        finally:
            admin.close()
        # Published while the hub reconnects (its backoff): only the resync brings it.
        await w.frame()
        assert await w.sink.flush(5)
        await converged(client, redis_params)
        await client.close()
    assert "reconnected" in reasons(client)


async def test_hub_output_buffer_overflow(
    redis_factory: Callable[..., Any], start_service: ServiceFactory
) -> None:
    server = redis_factory()
    params: RedisConnectionParams = server.params
    service = await start_service(redis_host=params.host, redis_port=params.port)
    admin = redis.Redis(**params.redis_kwargs())
    try:
        async with writer(params) as w:
            await w.frame()
            assert await w.sink.flush(5)
            client = await connected_client(service)
            admin.config_set("client-output-buffer-limit", "pubsub 1kb 1kb 0")
            # Bursts far above 1 KB: Redis drops the hub's connection.
            for _ in range(20):
                await w.frame(per_symbol=100)
            assert await w.sink.flush(5)
            await eventually(lambda: "reconnected" in reasons(client), 10, "a reconnect resync")
            # No event after the burst: the resync's snapshots alone bring the latest.
            await converged(client, params)
            await client.close()
    finally:
        admin.close()


async def test_writer_restart_new_epoch(
    redis_params: RedisConnectionParams, start_service: ServiceFactory
) -> None:
    service = await start_service()
    client = await connected_client(service)
    async with writer(redis_params) as old:
        for _ in range(100):
            await old.frame()
        assert await old.sink.flush(5)
        await converged(client, redis_params)
    # A restarted service: a new epoch, its numbering starts again at 1.
    async with writer(redis_params) as new:
        assert new.processor.epoch != old.processor.epoch
        new.n = 1000
        for _ in range(10):
            await new.frame()
        assert await new.sink.flush(5)
        await converged(client, redis_params)
    await client.close()
    assert reasons(client).count("epoch") == len(SYMBOLS), reasons(client)
    assert client.latest["AAPL"] is not None and client.latest["AAPL"]["seq"] == 10


async def test_redis_restart(
    redis_factory: Callable[..., Any], start_service: ServiceFactory
) -> None:
    server = redis_factory()
    params: RedisConnectionParams = server.params
    service = await start_service(redis_host=params.host, redis_port=params.port)
    async with writer(params) as w:
        for _ in range(20):
            await w.frame()
        assert await w.sink.flush(5)
        client = await connected_client(service)
        await converged(client, params)
        await asyncio.to_thread(server.restart)  # empty again: no persistence
        for _ in range(20):
            await w.frame()
            await asyncio.sleep(0.01)
        assert await w.sink.flush(10)
        await converged(client, params)
        await client.close()
    assert {"reconnected", "notice:redis.recovered"} & set(reasons(client)), reasons(client)
