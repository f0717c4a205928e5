"""PositionBasedSubscription: the simulator's positions API over a real socket, a real
stream connected to the simulator, a real Redis behind the registry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from apps.simulator import AlpacaSimulator
from libs.market_data import (
    AlpacaMarketDataStream,
    BrokerRateLimitError,
    BrokerUnavailableError,
    PositionBasedSubscription,
    SubscriptionError,
)
from libs.market_data.broker import AlpacaRestClient
from libs.market_data.subscriptions.registry import (
    SUBSCRIPTIONS_KEY,
    SubscriptionRegistry,
    SubscriptionSource,
)
from libs.redis_client import EventPublisher, RedisClient
from tests.helpers import eventually

MANUAL, POSITIONS = SubscriptionSource.MANUAL, SubscriptionSource.POSITIONS


def pos(symbol: str, qty: str = "10", **extra: str) -> dict[str, str]:
    return {"symbol": symbol, "qty": qty, "avg_entry_price": "100.00", **extra}


@dataclass
class Parts:
    sim: AlpacaSimulator
    stream: AlpacaMarketDataStream
    registry: SubscriptionRegistry
    broker: AlpacaRestClient
    sync: PositionBasedSubscription


@pytest.fixture
async def parts(simulator: AlpacaSimulator, redis_client: RedisClient) -> AsyncIterator[Parts]:
    publisher = EventPublisher(client=redis_client)
    stream = AlpacaMarketDataStream(
        "sim-key",
        "sim-secret",
        redis_client,
        publisher,
        url=simulator.url(),
        crypto_url=simulator.crypto_url(),
        reconnect_base_delay=0.05,
        reconnect_max_delay=0.2,
    )
    running = asyncio.create_task(stream.start())
    await eventually(stream.is_connected, what="the stream to connect")
    registry = SubscriptionRegistry(stream, redis_client)
    broker = AlpacaRestClient(
        "sim-key",
        "sim-secret",
        base_url=simulator.http_url(),
        data_base_url=simulator.http_url(),
        retry_base_delay=0.01,
    )
    sync = PositionBasedSubscription(broker, registry, interval=0.05)
    try:
        yield Parts(simulator, stream, registry, broker, sync)
    finally:
        await sync.stop()
        await stream.stop()
        with contextlib.suppress(Exception):
            await running
        await broker.aclose()
        await publisher.close()


async def test_positions_appear_and_subscriptions_follow(parts: Parts) -> None:
    parts.sim.set_positions([pos("AAPL"), pos("MSFT", "-5")])
    result = await parts.sync.sync_once()
    assert (result.added, result.removed, result.symbols) == (
        ["AAPL", "MSFT"],
        [],
        ["AAPL", "MSFT"],
    )
    assert parts.registry.sources() == {"AAPL": ["positions"], "MSFT": ["positions"]}
    assert parts.stream.get_subscribed_symbols() == ["AAPL", "MSFT"]
    # Confirmed by the broker (the simulator), not only wanted.
    assert parts.sim.subscribed_quotes == {"AAPL", "MSFT"}
    again = await parts.sync.sync_once()
    assert (again.added, again.removed) == ([], [])


async def test_a_closed_position_is_dropped_unless_subscribed_by_hand(
    parts: Parts, redis_client: RedisClient
) -> None:
    await parts.registry.add(["MSFT"], MANUAL)
    parts.sim.set_positions([pos("AAPL"), pos("MSFT"), pos("TSLA", "-1")])
    await parts.sync.sync_once()
    assert parts.registry.sources()["MSFT"] == ["manual", "positions"]

    parts.sim.set_positions([pos("TSLA", "-1")])  # AAPL and MSFT closed
    result = await parts.sync.sync_once()
    assert result.removed == ["AAPL", "MSFT"]
    assert parts.registry.sources() == {"MSFT": ["manual"], "TSLA": ["positions"]}
    assert parts.stream.get_subscribed_symbols() == ["MSFT", "TSLA"]
    await eventually(
        lambda: parts.sim.subscribed_quotes == {"MSFT", "TSLA"}, what="the unsubscribe"
    )
    assert await redis_client.hgetall(SUBSCRIPTIONS_KEY) == {"MSFT": "manual", "TSLA": "positions"}

    parts.sim.set_positions([])
    await parts.sync.sync_once()
    assert parts.registry.sources() == {"MSFT": ["manual"]}


async def test_a_failing_positions_call_leaves_subscriptions_untouched(parts: Parts) -> None:
    await parts.registry.add(["NVDA"], MANUAL)
    parts.sim.set_positions([pos("AAPL")])
    await parts.sync.sync_once()
    before = parts.registry.sources()

    parts.sim.set_positions([])  # would release AAPL, if the call got through
    parts.sim.fail_positions(503, times=6, retry_after=0)
    for expected_failures in (1, 2):
        with pytest.raises(BrokerUnavailableError, match="HTTP 503"):
            await parts.sync.sync_once()
        status = parts.sync.status()
        assert status.failing
        assert status.consecutive_failures == expected_failures
    assert parts.registry.sources() == before
    assert parts.stream.get_subscribed_symbols() == ["AAPL", "NVDA"]
    status = parts.sync.status()
    assert status.last_error is not None and "HTTP 503" in status.last_error
    assert status.last_success_at is not None
    assert status.last_attempt_at is not None and status.last_attempt_at > status.last_success_at
    assert status.symbols == ["AAPL"]

    # Back: the sync catches up and the failure is cleared.
    await parts.sync.sync_once()
    status = parts.sync.status()
    assert (status.failing, status.last_error, status.failures, status.syncs) == (False, None, 2, 2)
    assert parts.registry.sources() == {"NVDA": ["manual"]}


async def test_only_streamed_valid_symbols_are_followed(parts: Parts) -> None:
    parts.sim.set_positions(
        [
            pos("AAPL"),
            pos("SPY240119C00450000", asset_class="us_option"),
            pos("BTCPERP", asset_class="crypto_perp"),
        ]
    )
    result = await parts.sync.sync_once()
    assert result.symbols == ["AAPL"]
    assert parts.registry.symbols(POSITIONS) == ["AAPL"]


async def test_a_crypto_position_is_followed_as_its_pair_on_the_crypto_feed(
    parts: Parts,
) -> None:
    # As Alpaca reports them: BTCUSD / ETHUSDT, asset class crypto, a fractional qty.
    parts.sim.set_positions(
        [
            pos("AAPL"),
            pos("BTCUSD", "0.5", asset_class="crypto"),
            pos("ETHUSDT", "1.25", asset_class="crypto"),
        ]
    )
    assert [p.symbol for p in parts.sim.rest.positions] == ["AAPL", "BTCUSD", "ETHUSDT"]
    result = await parts.sync.sync_once()
    assert result.symbols == ["AAPL", "BTC/USD", "ETH/USDT"]
    assert parts.registry.symbols(POSITIONS) == ["AAPL", "BTC/USD", "ETH/USDT"]
    # Routed by feed: the pairs to the crypto connection, never to the stock one.
    assert set(parts.stream.crypto_connection.desired) == {"BTC/USD", "ETH/USDT"}
    assert set(parts.stream.connection.desired) == {"AAPL"}
    await eventually(
        lambda: {"AAPL", "BTC/USD", "ETH/USDT"} <= parts.sim.subscribed_quotes,
        what="the pairs subscribed on the simulator's crypto feed",
    )
    # The position closes: its pair is released from the crypto feed.
    parts.sim.set_positions([pos("AAPL"), pos("ETHUSDT", "1.25", asset_class="crypto")])
    assert (await parts.sync.sync_once()).removed == ["BTC/USD"]
    assert set(parts.stream.crypto_connection.desired) == {"ETH/USDT"}


async def test_a_refused_subscribe_is_reported_and_the_next_sync_retries(parts: Parts) -> None:
    parts.sim.set_positions([pos("AAPL")])
    parts.sim.reject_next_subscribe(405)
    with pytest.raises(SubscriptionError):
        await parts.sync.sync_once()
    assert parts.sync.status().failing
    assert parts.registry.sources() == {}
    await parts.sync.sync_once()
    assert parts.registry.sources() == {"AAPL": ["positions"]}


async def test_the_background_task_syncs_on_its_interval_and_stops(parts: Parts) -> None:
    parts.sim.set_positions([pos("AAPL")])
    parts.sync.start()
    parts.sync.start()  # idempotent
    await eventually(lambda: parts.registry.symbols(POSITIONS) == ["AAPL"], what="the first sync")
    assert parts.sync.status().running
    parts.sim.set_positions([pos("MSFT")])
    await eventually(lambda: parts.registry.symbols(POSITIONS) == ["MSFT"], what="a later sync")

    parts.sim.fail_positions(500, times=1000, retry_after=0)
    await eventually(lambda: parts.sync.status().consecutive_failures >= 2, what="failures")
    assert parts.registry.symbols(POSITIONS) == ["MSFT"]
    assert parts.sync.status().running, "a failure does not end the task"

    await parts.sync.stop()
    assert not parts.sync.status().running
    await parts.sync.stop()  # idempotent


async def test_the_interval_must_be_positive_and_finite(parts: Parts) -> None:
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="interval"):
            PositionBasedSubscription(parts.broker, parts.registry, interval=bad)


async def test_a_rate_limit_stretches_the_next_sync_but_never_past_the_cap(
    parts: Parts,
) -> None:
    sync = PositionBasedSubscription(parts.broker, parts.registry, interval=30)

    def limited(retry_after: float | None) -> BrokerRateLimitError:
        return BrokerRateLimitError("HTTP 429", status=429, retry_after=retry_after)

    assert sync.delay_after(None) == 30
    assert sync.delay_after(BrokerUnavailableError("HTTP 503")) == 30
    assert sync.delay_after(limited(None)) == 30
    assert sync.delay_after(limited(5.0)) == 30  # never sooner than the interval
    assert sync.delay_after(limited(120.0)) == 120
    assert sync.delay_after(limited(3600.0)) == 300  # look again at least every 5 minutes
    # An interval past the cap is kept: a rate limit never makes the sync come sooner.
    slow = PositionBasedSubscription(parts.broker, parts.registry, interval=600)
    assert slow.delay_after(limited(3600.0)) == 600


async def test_status_is_a_copy(parts: Parts) -> None:
    parts.sim.set_positions([pos("AAPL")])
    await parts.sync.sync_once()
    status = parts.sync.status()
    status.symbols.append("MSFT")
    status.syncs = 99
    assert (parts.sync.status().symbols, parts.sync.status().syncs) == (["AAPL"], 1)
