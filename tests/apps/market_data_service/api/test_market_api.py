"""The subscribe API for the whole market, channels, crypto pairs and option symbols, and a
bounded ``/health`` with many symbols: the service over HTTP, the simulator, a real Redis."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.simulator import AlpacaSimulator
from libs.market_data import native
from libs.redis_client import RedisClient
from tests.fixtures.service import Service, ServiceFactory
from tests.helpers import eventually, quote


async def post(service: Service, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
    reply = await service.http.post("/api/v1/subscribe", json=body)
    assert reply.status_code == expect, reply.text
    result: dict[str, Any] = reply.json()
    return result


async def test_the_wildcard_is_listed_beside_named_symbols_and_released_alone(
    service: Service, simulator: AlpacaSimulator
) -> None:
    await post(service, {"symbols": ["AAPL"]})
    body = await post(service, {"symbols": ["*"]})
    assert body["subscribed_symbols"] == ["*"]
    assert body["total_subscriptions"] == 2
    listing = (await service.http.get("/api/v1/subscriptions")).json()
    assert listing["symbols"] == ["*", "AAPL"]
    assert listing["sources"] == {"*": ["manual"], "AAPL": ["manual"]}
    assert listing["channels"] == {"*": ["quotes"], "AAPL": ["quotes"]}
    await eventually(lambda: simulator.subscribed_quotes == {"*", "AAPL"}, what="the ack")

    reply = await service.http.delete("/api/v1/subscribe/*")
    assert reply.status_code == 200, reply.text
    listing = (await service.http.get("/api/v1/subscriptions")).json()
    assert listing["symbols"] == ["AAPL"]
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="the unsubscribe")
    # Saved for the next start: the wildcard went, the named symbol stayed.
    saved = await service.service.redis_client.hgetall("market_data:subscriptions")
    assert saved == {"AAPL": "manual"}


async def test_channels_and_a_crypto_pair(
    service: Service, simulator: AlpacaSimulator, redis_client: RedisClient
) -> None:
    body = await post(service, {"symbols": ["aapl", "btc/usd"], "channels": ["quotes", "trades"]})
    assert body["subscribed_symbols"] == ["AAPL", "BTC/USD"]
    assert body["channels"] == ["quotes", "trades"]
    listing = (await service.http.get("/api/v1/subscriptions")).json()
    assert listing["channels"] == {"AAPL": ["quotes", "trades"], "BTC/USD": ["quotes", "trades"]}
    saved = await service.service.redis_client.hgetall("market_data:subscriptions")
    assert set(saved) == {"AAPL", "trades:AAPL", "BTC/USD", "trades:BTC/USD"}
    assert service.stream.crypto_connection.is_connected()
    crypto = {"S": "BTC/USD", "bp": Decimal("60000.5"), "bs": Decimal("0.5"),
              "ap": Decimal("60001.5"), "as": Decimal("0.125")}  # fmt: skip
    await simulator.send_quotes([crypto, quote("AAPL", "150.00", "150.02")])
    await eventually(
        lambda: service.stream.stats().processor.quotes_accepted == 2, what="both quotes"
    )
    assert await service.stream.sink.flush(5.0)
    reply = await service.http.get("/api/v1/prices/BTC/USD")
    assert reply.status_code == 200, reply.text
    assert (reply.json()["mid"], reply.json()["bid_size"]) == ("60001.0", "0.5")
    health = await service.health()
    assert health["stats"]["crypto"]["connected"] is True

    # Releasing one channel keeps the other.
    reply = await service.http.delete("/api/v1/subscribe/AAPL", params={"channels": "trades"})
    assert reply.status_code == 200, reply.text
    listing = (await service.http.get("/api/v1/subscriptions")).json()
    assert listing["channels"]["AAPL"] == ["quotes"]


@pytest.mark.parametrize("symbol", ["AAPL240621C00190000", "spy250117p00400000"])
async def test_option_symbols_are_refused_as_out_of_scope(service: Service, symbol: str) -> None:
    body = await post(service, {"symbols": ["MSFT", symbol]}, expect=422)
    assert body["code"] == "invalid_symbol"
    assert "options are out of scope" in body["detail"]
    assert service.stream.get_subscribed_symbols() == []


async def test_an_unknown_channel_is_a_422(service: Service) -> None:
    body = await post(service, {"symbols": ["MSFT"], "channels": ["orderbooks"]}, expect=422)
    assert "channels" in body["detail"]


@pytest.mark.timeout(120)
async def test_health_sums_up_many_symbols_instead_of_listing_them(service: Service) -> None:
    for start in range(0, 1001, 100):
        await post(
            service, {"symbols": [f"S{i:04d}" for i in range(start, min(start + 100, 1001))]}
        )
    await post(service, {"symbols": ["*"]})
    reply = await service.http.get("/health")
    health = reply.json()
    ages = health["quote_ages"]
    assert (ages["symbols_named"], ages["wildcard"], ages["listed"]) == (1001, True, False)
    # The quiet ones first, a few of them: never a thousand entries.
    assert 0 < len(health["last_update_age_seconds"]) <= 20
    assert len(reply.content) < 20_000
    metrics = (await service.http.get("/metrics")).text
    assert "market_data_symbols_tracked 0.0" in metrics
    assert 'symbol="*"' not in metrics


async def test_health_says_which_quote_path_runs(service: Service) -> None:
    # docs/architecture.md, "Native quote path": the build made here is the one in use.
    health = (await service.http.get("/health")).json()
    assert health["quote_path"] == "native"


async def test_market_data_native_off_runs_the_python_path(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    try:
        off = await start_service(market_data_native=False)
        await off.wait_connected()
        await post(off, {"symbols": ["AAPL"]})
        await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="the ack")
        await simulator.send_quotes([quote("AAPL", "150.00", "150.02")])
        assert (await off.http.get("/health")).json()["quote_path"] == (
            "python (MARKET_DATA_NATIVE=0)"
        )
        # The feed still lands: the Python path does the same work.
        assert native.scan is None
        await eventually(
            lambda: off.stream.stats().processor.quotes_accepted > 0,
            timeout=10,
            what="quotes accepted on the Python path",
        )
    finally:
        native.use(True)  # the switch is per process: leave it as the other tests expect
