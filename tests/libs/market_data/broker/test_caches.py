"""Broker reads kept a short while: previous closes per symbol for a TTL, positions for
a second with concurrent callers sharing one read, failures never kept."""

from __future__ import annotations

import asyncio
import time

import pytest

from apps.simulator import AlpacaSimulator
from libs.market_data import BrokerAuthError
from libs.market_data.broker import AlpacaRestClient, PreviousCloseCache, RecentPositions


async def test_previous_close_cache_asks_once_per_symbol(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    cache = PreviousCloseCache(broker, ttl=60)
    first = await cache.get(["AAPL", "MSFT"])
    again = await cache.get(["MSFT", "AAPL"])
    assert first == again
    assert simulator.rest.count("/v2/stocks/snapshots") == 1
    await cache.get(["AAPL", "NVDA"])  # only NVDA is new
    assert simulator.rest.count("/v2/stocks/snapshots") == 2
    assert simulator.client_messages == []  # nothing went through the WebSocket


async def test_recent_positions_read_once_per_max_age_and_one_at_a_time(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.set_positions([{"symbol": "AAPL", "qty": "1", "avg_entry_price": "1"}])
    recent = RecentPositions(broker, max_age=0.3)
    results = await asyncio.gather(*(recent.get() for _ in range(5)))
    assert simulator.rest.count("/v2/positions") == 1  # concurrent callers share one read
    assert all(result == results[0] for result in results)
    positions, read_at = results[0]
    assert [p.symbol for p in positions] == ["AAPL"]
    assert abs(time.time() - read_at) < 1
    simulator.set_positions([])
    assert (await recent.get())[0] == positions  # still fresh
    await asyncio.sleep(0.35)
    assert (await recent.get())[0] == []
    assert simulator.rest.count("/v2/positions") == 2


async def test_recent_positions_do_not_keep_a_failure(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    recent = RecentPositions(broker, max_age=60)
    simulator.fail_positions(401)
    with pytest.raises(BrokerAuthError):
        await recent.get()
    assert (await recent.get())[0] == []
