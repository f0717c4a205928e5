"""PriceSubscriber on a crypto pair: fractional sizes stay exact, end to end.

The whole write path is real: the simulator's crypto feed over a real WebSocket, the
service's stream (validation, ``seq``/``epoch``, the Redis sink) and a real redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from apps.simulator import AlpacaSimulator
from libs.market_data import AlpacaMarketDataStream, LivePrice, PriceSubscriber
from libs.redis_client import EventPublisher, RedisClient, RedisConnectionParams
from tests.helpers import eventually, quote

BTC = {"S": "BTC/USD", "bp": Decimal("71859.53"), "bs": Decimal("0.00012345"),
       "ap": Decimal("71939.7"), "as": Decimal("1.5")}  # fmt: skip


@pytest.fixture
async def stream(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> AsyncIterator[AlpacaMarketDataStream]:
    client = RedisClient(params=redis_params)
    stream = AlpacaMarketDataStream(
        "sim-key", "sim-secret", client, EventPublisher(client=client), price_ttl=300,
        url=simulator.url(), crypto_url=simulator.crypto_url(), reconnect_base_delay=0.05,
        reconnect_max_delay=0.2, step_timeout=2.0, compression=None,
    )  # fmt: skip
    task = asyncio.create_task(stream.start())
    await eventually(stream.is_connected, what="the stream to connect")
    await stream.subscribe_symbols(["AAPL", "BTC/USD"])
    await eventually(stream.crypto_connection.is_connected, what="the crypto connection")
    yield stream
    await stream.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    await client.close()


def sizes(price: LivePrice | None) -> tuple[Decimal, Decimal] | None:
    return None if price is None else (price.bid_size, price.ask_size)


async def test_fractional_sizes_arrive_exact_and_stock_sizes_stay_whole(
    stream: AlpacaMarketDataStream, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    async with PriceSubscriber(redis_params, ["AAPL", "BTC/USD"]) as sub:
        await simulator.send_quotes([BTC, quote("AAPL", "150.10", "150.20")])
        updates = []
        async with asyncio.timeout(10):
            async for update in sub:
                updates.append(update)
                if {u.symbol for u in updates if u.kind == "update"} == {"AAPL", "BTC/USD"}:
                    break
        # A snapshot of the crypto pair's cached record reads the same way.
        async with PriceSubscriber(redis_params, ["BTC/USD"]) as again:
            snapshot = again.latest("BTC/USD")
    assert sub.malformed == 0 and again.malformed == 0
    assert [u.kind for u in updates] == ["update", "update"]  # nothing was cached before
    btc = sub.latest("BTC/USD")
    assert btc is not None
    assert sizes(btc) == (Decimal("0.00012345"), Decimal("1.5"))
    assert str(btc.bid_size) == "0.00012345"  # the wire text, not a float's
    assert (btc.bid, btc.ask, btc.mid, btc.seq) == (
        Decimal("71859.53"), Decimal("71939.7"), Decimal("71899.615"), 1)  # fmt: skip
    assert sizes(snapshot) == sizes(btc)
    assert sizes(sub.latest("AAPL")) == (Decimal(1), Decimal(2))
    assert str(sub.latest("AAPL").bid_size) == "1"  # type: ignore[union-attr]
