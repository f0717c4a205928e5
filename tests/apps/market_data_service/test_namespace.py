"""REDIS_NAMESPACE: two deployments on one Redis keep their keys, channels, saved
subscriptions and notices apart; the empty namespace keeps the spec's names."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis

from apps.simulator import AlpacaSimulator
from libs.market_data.keys import KeySpace
from libs.redis_client import RedisConnectionParams
from tests.fixtures.service import Service, running_services
from tests.fixtures.simulator import SimulatorFactory
from tests.helpers import eventually, listen_prices, quote


def subscribed(sim: AlpacaSimulator, symbol: str) -> Callable[[], bool]:
    return lambda: symbol in sim.subscribed_quotes


def written(service: Service) -> Callable[[], bool]:
    return lambda: service.stream.stats().sink.quotes_written == 1


def keys_of(params: RedisConnectionParams) -> set[str]:
    with redis.Redis(**params.redis_kwargs()) as client:
        return {k.decode() for k in client.keys("*")}


async def test_two_namespaces_on_one_redis_never_mix(
    simulator_factory: SimulatorFactory, redis_params: RedisConnectionParams
) -> None:
    paper_sim, live_sim = await simulator_factory(), await simulator_factory()
    async with (
        running_services(paper_sim, redis_params, connected=True) as start_paper,
        running_services(live_sim, redis_params, connected=True) as start_live,
        listen_prices(redis_params) as unprefixed,
    ):
        paper = await start_paper(redis_namespace="paper")
        live = await start_live(redis_namespace="live")
        for service, sim, symbol in ((paper, paper_sim, "AAPL"), (live, live_sim, "MSFT")):
            reply = await service.http.post("/api/v1/subscribe", json={"symbols": [symbol]})
            assert reply.status_code == 201, reply.text
            await eventually(subscribed(sim, symbol))
        await paper_sim.send_quotes([quote("AAPL", "10.00", "10.02")])
        await live_sim.send_quotes([quote("MSFT", "20.00", "20.02")])
        for service in (paper, live):
            await eventually(written(service))
            assert await service.stream.sink.flush(5)
        names = keys_of(redis_params)
        assert {"paper:price:AAPL", "live:price:MSFT"} <= names
        assert {"paper:market_data:subscriptions", "live:market_data:subscriptions"} <= names
        assert not {"price:AAPL", "price:MSFT", "market_data:subscriptions"} & names
        with redis.Redis(**redis_params.redis_kwargs()) as client:
            assert client.hkeys("paper:market_data:subscriptions") == [b"AAPL"]
            assert client.hkeys("live:market_data:subscriptions") == [b"MSFT"]
            cached = json.loads(client.get("paper:price:AAPL") or b"{}")
        assert cached["mid"] == "10.01"
        # Each service reads its own namespace back.
        assert (await paper.get("/api/v1/prices/AAPL"))["mid"] == "10.01"
        assert (await live.http.get("/api/v1/prices/AAPL")).status_code == 404
        # /health's cache probe reads the namespaced key: the price is there, fresh.
        cache = (await paper.http.get("/health")).json()["cache"]
        assert (cache["fresh_symbols"], cache["missing_symbols"]) == (1, 0), cache
        # Events went to the namespaced channels only: price.updated.* heard nothing.
        assert unprefixed.events == []


def test_the_empty_namespace_is_the_spec_s_names() -> None:
    keys = KeySpace()
    assert (keys.price_key("AAPL"), keys.price_channel("AAPL")) == (
        "price:AAPL",
        "price.updated.AAPL",
    )
    assert (keys.status_channel, keys.subscriptions_key) == (
        "market_data.status",
        "market_data:subscriptions",
    )
    spaced = KeySpace("paper")
    assert spaced.price_channel("BRK.B") == "paper:price.updated.BRK.B"
    assert spaced.heartbeat_key == "paper:market_data:heartbeat"


@pytest.mark.parametrize("bad", ["a b", "x" * 33, "a:b", "*"])
def test_a_namespace_is_a_short_plain_word(bad: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        KeySpace(bad)
