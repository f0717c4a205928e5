"""The stream's Redis contract, end to end over the simulator and a real redis-server:
cached prices expire after their TTL, every event reaches a real subscriber in order
per symbol, readers count hits and misses, and the per-frame measurements stay per frame."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from apps.simulator import AlpacaSimulator
from libs.market_data import AlpacaMarketDataStream
from libs.market_data.cache.price_cache import PriceCache
from libs.redis_client import EventPublisher, RedisClient, RedisConnectionParams
from tests.fixtures.redis import RedisFactory
from tests.helpers import eventually, listen_prices, quote


@contextlib.asynccontextmanager
async def running_stream(
    simulator: AlpacaSimulator, params: RedisConnectionParams, *, price_ttl: int = 300
) -> AsyncIterator[AlpacaMarketDataStream]:
    client = RedisClient(params=params)
    stream = AlpacaMarketDataStream(
        "sim-key",
        "sim-secret",
        client,
        EventPublisher(client=client),
        price_ttl,
        url=simulator.url(),
        reconnect_base_delay=0.05,
        reconnect_max_delay=0.2,
        compression=None,
    )
    task = asyncio.create_task(stream.start())
    try:
        await eventually(stream.is_connected, what="the stream to connect")
        yield stream
    finally:
        await stream.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await client.close()


async def handled(stream: AlpacaMarketDataStream, total: int) -> None:
    """Until ``total`` quotes went through and Redis acknowledged every write."""
    await eventually(
        lambda: stream.get_connection_stats()["quotes_received"] == total,
        what=f"{total} quotes handled",
    )
    assert await stream.sink.flush(5.0)


async def test_cached_prices_expire_after_their_ttl(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams, redis_client: RedisClient
) -> None:
    async with running_stream(simulator, redis_params, price_ttl=1) as stream:
        await stream.subscribe_symbols(["AAPL", "MSFT"])
        await simulator.send_quotes([quote("AAPL", "10.00", "10.02")])
        await handled(stream, 1)
        assert await stream.sink.flush(5)  # the SET landed (its event follows it)
        written = time.monotonic()
        cache = PriceCache(redis_client)
        # PTTL, not TTL: Redis rounds TTL to whole seconds, 0 once half of it is gone.
        assert 0 < await redis_client.redis.pttl("price:AAPL") <= 1000
        assert await cache.get("AAPL") is not None
        # A write refreshes the TTL: the newer price lives its full second again.
        await asyncio.sleep(0.6)
        await simulator.send_quotes([quote("AAPL", "10.01", "10.03")])
        await handled(stream, 2)
        assert await stream.sink.flush(5)
        refreshed = time.monotonic()
        assert 0 < await redis_client.redis.pttl("price:AAPL") <= 1000
        while await redis_client.exists("price:AAPL"):
            assert time.monotonic() - refreshed < 2.5, "price:AAPL outlived its TTL"
            await asyncio.sleep(0.02)
        assert time.monotonic() - written > 1.0  # the refresh really extended its life
        assert await cache.get("AAPL") is None
        assert (cache.hits, cache.misses) == (1, 1)


async def test_every_event_reaches_a_subscriber_in_order_per_symbol(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams, redis_client: RedisClient
) -> None:
    symbols = ["AAPL", "MSFT", "GOOGL", "BRK.B"]
    sent: dict[str, list[str]] = {s: [] for s in symbols}
    async with (
        running_stream(simulator, redis_params) as stream,
        listen_prices(redis_params) as listener,
    ):
        await stream.subscribe_symbols(symbols)
        stream.latency_sample_interval = 0.0  # every frame, for an exact count
        total = 0
        for frame in range(40):
            quotes = []
            # Uneven frames: one symbol several times in a frame, others now and then.
            for i in range(1 + frame % 7):
                symbol = symbols[(frame + i * i) % len(symbols)]
                bid = Decimal(100 + len(sent[symbol])) + Decimal("0.01") * frame
                quotes.append(quote(symbol, str(bid), str(bid + Decimal("0.02"))))
                sent[symbol].append(str(bid + Decimal("0.01")))
            await simulator.send_quotes(quotes)
            total += len(quotes)
        await handled(stream, total)
        await eventually(lambda: len(listener.events) == total, what=f"{total} events")
        for symbol in symbols:
            assert listener.prices(symbol) == sent[symbol], symbol
            cached = await PriceCache(redis_client).get(symbol)
            assert cached is not None and str(cached.mid) == sent[symbol][-1]
        stats = stream.get_connection_stats()
        assert stats["quotes_written"] == total
        # Latency is sampled per frame, not per quote.
        assert stream.cache_write_latency.count == 40


async def test_latency_samples_are_bounded_in_time(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    async with running_stream(simulator, redis_params) as stream:
        stream.latency_sample_interval = 0.2
        await stream.subscribe_symbols(["AAPL"])
        started = time.monotonic()
        for i in range(50):
            await simulator.send_quotes([quote("AAPL", f"1.{i:02d}", "2.00")])
        await handled(stream, 50)
        elapsed = time.monotonic() - started
        assert 1 <= stream.cache_write_latency.count <= 1 + elapsed / 0.2


async def test_deferred_writes_are_not_counted_as_latency(
    simulator: AlpacaSimulator, redis_factory: RedisFactory
) -> None:
    server = redis_factory()
    async with running_stream(simulator, server.params) as stream:
        await stream.subscribe_symbols(["AAPL"])
        await simulator.send_quotes([quote("AAPL", "1.00", "1.01")])
        await handled(stream, 1)
        assert stream.cache_write_latency.count == 1
        server.kill()
        await simulator.send_quotes([quote("AAPL", "1.01", "1.02")])
        await eventually(lambda: not stream.sink.connected, what="the outage to be noticed")
        await simulator.send_quotes([quote("AAPL", "1.02", "1.03")])
        await eventually(
            lambda: stream.get_connection_stats()["quotes_deferred"] >= 1, what="a deferral"
        )
        assert stream.cache_write_latency.count <= 2  # the frame that met the outage at most


@pytest.mark.parametrize("stamp", ["2024-13-45T99:99:99Z", "2024-07-24T07:56:-infZ"])
async def test_an_unreadable_exchange_time_is_cached_but_not_measured(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams, stamp: str
) -> None:
    async with running_stream(simulator, redis_params) as stream:
        await stream.subscribe_symbols(["AAPL"])
        await simulator.send_quotes([quote("AAPL", "1.00", "1.01", t=stamp)])
        await handled(stream, 1)
        assert stream.get_connection_stats()["quotes_accepted"] == 1
        assert stream.cache_write_latency.count == 0
        assert stream.cache_write_latency.sum == 0.0
