"""What the gap-fill tests share: streams on the simulator with a REST client for the
fill (the ``make_stream`` fixture, through conftest.py), the pub/sub they publish on,
and reads of the cache."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from apps.simulator import AlpacaSimulator
from libs.market_data import AlpacaMarketDataStream
from libs.market_data.broker import AlpacaRestClient
from libs.market_data.gapfill import GapFillPolicy
from libs.redis_client import EventPublisher, RedisClient, RedisConnectionParams
from tests.helpers import eventually, listen
from tests.libs.market_data.broker.sim_client import client_for

__all__ = ["Messages", "StreamFactory", "cached", "make_stream", "notices", "pubsub", "wait_cached"]

StreamFactory = Callable[..., Awaitable[AlpacaMarketDataStream]]
Messages = list[tuple[str, dict[str, Any]]]


@pytest.fixture
async def make_stream(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> AsyncIterator[StreamFactory]:
    """Streams on the simulator (stock and crypto feeds) and the test Redis, with a REST
    client on the simulator for the gap fill (``rest=False``: none); started at once."""
    made: list[
        tuple[AlpacaMarketDataStream, RedisClient, AlpacaRestClient, asyncio.Task[None]]
    ] = []

    async def make(
        symbols: list[str], *, rest: bool = True, policy: GapFillPolicy | None = None
    ) -> AlpacaMarketDataStream:
        client = RedisClient(params=redis_params)
        broker = client_for(simulator, max_attempts=2)
        stream = AlpacaMarketDataStream(
            "sim-key",
            "sim-secret",
            client,
            EventPublisher(client=client),
            url=simulator.url(),
            crypto_url=simulator.crypto_url(),
            reconnect_base_delay=0.05,
            reconnect_max_delay=0.2,
            compression=None,
            latest_quotes=broker if rest else None,
            gap_fill=policy or GapFillPolicy(cooldown=0.0),
        )
        await stream.subscribe_symbols(symbols)
        task = asyncio.create_task(stream.start())
        made.append((stream, client, broker, task))
        await eventually(stream.is_connected, what="connected")
        return stream

    yield make
    for stream, client, broker, task in made:
        await stream.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await broker.aclose()
        await client.close()


@contextlib.asynccontextmanager
async def pubsub(params: RedisConnectionParams) -> AsyncIterator[Messages]:
    """Price events and status notices, in the one order Redis delivered them."""
    messages: Messages = []
    async with listen(
        params,
        lambda channel, data: messages.append((channel, data)),
        channels=["market_data.status"],
        patterns=["price.updated.*"],
    ):
        yield messages


def notices(messages: Messages, event: str) -> list[dict[str, Any]]:
    return [d for c, d in messages if c == "market_data.status" and d["event_type"] == event]


async def cached(client: RedisClient, symbol: str) -> dict[str, Any] | None:
    raw = await client.get(f"price:{symbol}")
    return None if raw is None else json.loads(raw)


async def wait_cached(client: RedisClient, symbol: str, bid: str) -> dict[str, Any]:
    found: dict[str, Any] | None = None

    async def check() -> bool:
        nonlocal found
        found = await cached(client, symbol)
        return found is not None and found["bid"] == bid

    deadline = asyncio.get_running_loop().time() + 5
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"{symbol} never cached at {bid}"
        await asyncio.sleep(0.01)
    assert found is not None
    return found
