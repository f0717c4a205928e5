"""A crypto position end to end: Alpaca reports it as ``BTCUSD`` (asset class
``crypto``); the service follows it as the pair ``BTC/USD`` on the crypto feed and the
P&L prices it from ``price:BTC/USD``. The simulator (positions, REST, both feeds) over
real sockets, a real Redis, the service in the test loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisConnectionParams
from tests.apps.market_data_service.api.test_positions_api import PNL, wait_cached
from tests.fixtures.service import Service, local_broker, running_services
from tests.helpers import eventually, quote


@pytest.fixture
async def service(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> AsyncIterator[Service]:
    """A service following the simulator's positions every 50 ms, connected."""
    async with running_services(
        simulator,
        redis_params,
        connected=True,
        position_sync_interval=0.05,
        **local_broker(simulator),
    ) as start:
        yield await start()


async def test_a_crypto_position_follows_its_pair_and_is_priced_from_it(
    service: Service, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    simulator.set_positions(
        [
            {"symbol": "AAPL", "qty": "2", "avg_entry_price": "100"},
            {"symbol": "BTCUSD", "qty": "0.5", "avg_entry_price": "60000",
             "asset_class": "crypto"},
        ]
    )  # fmt: skip
    await service.wait_sources({"AAPL": ["positions"], "BTC/USD": ["positions"]})
    stream = service.service.stream
    assert set(stream.crypto_connection.desired) == {"BTC/USD"}
    assert "BTC/USD" not in stream.connection.desired and "BTCUSD" not in stream.connection.desired
    await eventually(
        lambda: {"AAPL", "BTC/USD"} <= simulator.subscribed_quotes, what="both feeds subscribed"
    )
    await simulator.send_quotes(
        [
            quote("AAPL", "101.00", "101.02"),
            {"S": "BTC/USD", "bp": Decimal("70000.10"), "bs": Decimal("0.00012345"),
             "ap": Decimal("70000.30"), "as": Decimal("1.5")},
        ]
    )  # fmt: skip
    await wait_cached(redis_params, "BTC/USD", "70000.20")
    await wait_cached(redis_params, "AAPL", "101.01")

    body = await service.get(PNL)
    btc = next(p for p in body["positions"] if p["symbol"] == "BTC/USD")
    # Long 0.5 @ 60000 at mid 70000.20: value 35000.10, P&L 5000.10.
    assert btc == {
        **btc,
        "qty": "0.5",
        "current_price": "70000.20",
        "price_source": "realtime",
        "market_value": "35000.10",
        "unrealized_pl": "5000.10",
    }
    assert body["totals"]["priced_positions"] == 2
    assert body["closing_prices_error"] is None
