"""What a gap fill reads when the wanted sets hold more than stock quote symbols: other
channels' topics (``trades:AAPL``, ``bars:*``) and the wildcard never reach REST; under
``*`` the symbols the stream already took quotes of are refreshed, within the budget;
crypto pairs are read from the crypto endpoint, their fractional sizes kept exact. The
simulator over real sockets answers a symbol sent to the wrong endpoint with a 400, so
every request here must be a 200."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.simulator import AlpacaSimulator
from apps.simulator.rest import CRYPTO_LATEST_QUOTES_PATH, LATEST_QUOTES_PATH
from libs.market_data import AlpacaMarketDataStream
from libs.market_data.gapfill import GapFillPolicy
from libs.redis_client import RedisClient, RedisConnectionParams
from tests.helpers import eventually, quote
from tests.libs.market_data.gapfill.fills import (
    StreamFactory,
    cached,
    notices,
    pubsub,
    wait_cached,
)

T0 = "2026-01-02T15:00:00Z"


def recovered(stream: AlpacaMarketDataStream) -> None:
    """The notice the sink publishes once writes land again: a fill of the whole set."""
    stream.sink.publish_status("redis.recovered", {"cause": "down", "symbols_rewritten": []})


def crypto_quote(bid: str, bid_size: str, ask: str, ask_size: str, t: str) -> dict[str, Any]:
    return {"S": "BTC/USD", "bp": Decimal(bid), "bs": Decimal(bid_size), "ap": Decimal(ask),
            "as": Decimal(ask_size), "t": t}  # fmt: skip


def all_answered(simulator: AlpacaSimulator) -> bool:
    return bool(simulator.rest.requests) and all(s == 200 for _, s in simulator.rest.requests)


async def wildcard_stream(
    make_stream: StreamFactory,
    simulator: AlpacaSimulator,
    redis_client: RedisClient,
    policy: GapFillPolicy | None = None,
) -> AlpacaMarketDataStream:
    """``*`` with MSFT named and other channels' topics; AAPL, MSFT, TSLA quoted at T0."""
    stream = await make_stream(["*", "MSFT", "trades:AAPL", "bars:*"], policy=policy)
    assert stream.gap_fill is not None
    assert await stream.gap_fill.wait_idle(5)
    await simulator.send_quotes(
        [quote(s, "10.00", "10.02", t=T0) for s in ("AAPL", "MSFT", "TSLA")]
    )
    for symbol in ("AAPL", "MSFT", "TSLA"):
        await wait_cached(redis_client, symbol, "10.00")
    return stream


async def test_under_the_wildcard_the_symbols_already_quoted_are_refreshed(
    simulator: AlpacaSimulator,
    make_stream: StreamFactory,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await wildcard_stream(make_stream, simulator, redis_client)
    # AAPL and TSLA (the wildcard's) moved during the gap; MSFT's REST quote is the held one.
    simulator.set_latest_quote("AAPL", "11.00", "11.02", timestamp="2026-01-02T15:05:00Z")
    simulator.set_latest_quote("TSLA", "12.00", "12.02", timestamp="2026-01-02T15:05:00Z")
    async with pubsub(redis_params) as messages:
        recovered(stream)
        await eventually(lambda: notices(messages, "gap.filled"), what="gap.filled")
    (filled,) = notices(messages, "gap.filled")
    assert filled["symbols"] == ["AAPL", "TSLA"]
    assert (filled["requested"], filled["complete"]) == (3, True)
    assert (await cached(redis_client, "TSLA") or {}).get("bid") == "12.00"
    # "*", "trades:AAPL" and "bars:*" never went to REST: each request was a valid one.
    assert all_answered(simulator)
    assert simulator.rest.count(CRYPTO_LATEST_QUOTES_PATH) == 0


async def test_the_wildcard_s_fill_is_bounded_by_the_calls_per_fill(
    simulator: AlpacaSimulator,
    make_stream: StreamFactory,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    policy = GapFillPolicy(cooldown=0.0, max_calls=1, batch_size=2)
    stream = await wildcard_stream(make_stream, simulator, redis_client, policy)
    assert stream.gap_fill is not None
    calls = stream.gap_fill.status().rest_calls
    for symbol in ("AAPL", "MSFT", "TSLA"):
        simulator.set_latest_quote(symbol, "11.00", "11.02", timestamp="2026-01-02T15:05:00Z")
    async with pubsub(redis_params) as messages:
        recovered(stream)
        await eventually(lambda: notices(messages, "gap.filled"), what="gap.filled")
    (filled,) = notices(messages, "gap.filled")
    # Equally old: by symbol, two per call, one call; TSLA waits for its next quote.
    assert filled["symbols"] == ["AAPL", "MSFT"]
    assert (filled["requested"], filled["complete"]) == (3, False)
    assert stream.gap_fill.status().rest_calls == calls + 1
    assert (await cached(redis_client, "TSLA") or {}).get("bid") == "10.00"
    assert all_answered(simulator)


async def test_a_crypto_pair_is_filled_from_the_crypto_endpoint_with_exact_sizes(
    simulator: AlpacaSimulator,
    make_stream: StreamFactory,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream(["AAPL"])
    assert stream.gap_fill is not None
    assert await stream.gap_fill.wait_idle(5)
    simulator.rest.set_latest_quote(crypto_quote("71859.53", "0.00012345", "71939.7", "1.5", T0))
    async with pubsub(redis_params) as messages:
        assert await stream.subscribe_symbols(["BTC/USD", "trades:BTC/USD"])
        price = await wait_cached(redis_client, "BTC/USD", "71859.53")
        await eventually(lambda: notices(messages, "gap.filled"), what="gap.filled")
    (filled,) = notices(messages, "gap.filled")
    assert (filled["trigger"], filled["symbols"]) == ("subscribe", ["BTC/USD"])
    # The crypto record: fractional sizes as exact strings, no exchange codes.
    assert (price["bid_size"], price["ask_size"]) == ("0.00012345", "1.5")
    assert (price["mid"], price["seq"], price["bid_exchange"]) == ("71899.615", 1, None)
    assert simulator.rest.count(CRYPTO_LATEST_QUOTES_PATH) == 1

    # A fill of the whole set reads each kind from its own endpoint.
    stocks = simulator.rest.count(LATEST_QUOTES_PATH)
    simulator.rest.set_latest_quote(
        crypto_quote("72000.01", "0.5", "72000.02", "2.25", "2026-01-02T15:05:00Z")
    )
    async with pubsub(redis_params) as messages:
        recovered(stream)
        await eventually(lambda: notices(messages, "gap.filled"), what="gap.filled")
    (filled,) = notices(messages, "gap.filled")
    assert (filled["symbols"], filled["requested"]) == (["BTC/USD"], 2)
    price = await wait_cached(redis_client, "BTC/USD", "72000.01")
    assert (price["bid_size"], price["ask_size"], price["seq"]) == ("0.5", "2.25", 2)
    assert simulator.rest.count(CRYPTO_LATEST_QUOTES_PATH) == 2
    assert simulator.rest.count(LATEST_QUOTES_PATH) == stocks + 1
    assert all_answered(simulator)
