"""The official SDK, unchanged, as a client of the simulator: proof the protocol is faithful."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

from alpaca.data.live.stock import StockDataStream
from alpaca.data.models.quotes import Quote

from tests.fixtures.simulator import SimulatorFactory


async def test_stock_data_stream_receives_quotes(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(rate=100)
    stream = StockDataStream("sim-key", "sim-secret", url_override=sim.url())
    received: list[Quote] = []
    three = asyncio.Event()

    async def on_quote(quote: Quote | dict[str, Any]) -> None:
        assert isinstance(quote, Quote)
        received.append(quote)
        if len(received) >= 3:
            three.set()

    # Before the run: subscribing from the loop while the stream runs deadlocks it.
    stream.subscribe_quotes(on_quote, "AAPL")
    task = asyncio.create_task(stream._run_forever())
    try:
        async with asyncio.timeout(10):
            await three.wait()
        assert sim.subscribed_quotes == {"AAPL"}
    finally:
        await stream.stop_ws()
        try:
            async with asyncio.timeout(8):
                await task
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    assert {quote.symbol for quote in received} == {"AAPL"}
    for quote in received:
        assert 0 < quote.bid_price <= quote.ask_price
        # alpaca-py hands out floats; the two-decimal text survives the round trip.
        bid = Decimal(str(quote.bid_price))
        assert bid == round(bid, 2)
        assert quote.timestamp.tzinfo is not None
    # alpaca-py spoke msgpack: its auth and fragmented subscribe were understood.
    assert sim.client_messages[0] == {"action": "auth", "key": "sim-key", "secret": "sim-secret"}
    assert sim.client_messages[1] == {"quotes": ["AAPL"], "action": "subscribe"}
