"""The gap fill end to end: the simulator over a real WebSocket and its REST latest quotes,
a real redis-server, a real pub/sub subscriber. After a reconnect and for a new
subscription, a quiet symbol's cache holds the simulator's current quote before any
streamed one; ``gap.filled`` follows the price events; a REST quote older than the cached
one never overwrites it; a REST side that fails is skipped and counted."""

from __future__ import annotations

import json

from apps.simulator import AlpacaSimulator
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


async def test_after_a_reconnect_a_quiet_symbol_holds_the_current_quote_then_gap_filled(
    simulator: AlpacaSimulator,
    make_stream: StreamFactory,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream(["AAPL", "TSLA"])
    await simulator.send_quotes(
        [
            quote("AAPL", "190.00", "190.02", t="2026-01-02T15:00:00Z"),
            quote("TSLA", "250.00", "250.10", t="2026-01-02T15:00:00Z"),
        ]
    )
    before = await wait_cached(redis_client, "TSLA", "250.00")
    assert before["seq"] == 1
    sent = simulator.quotes_sent
    async with pubsub(redis_params) as messages:
        # TSLA moved while we were away, and the simulator never streams it (rate 0).
        simulator.set_latest_quote(
            "TSLA", "251.25", "251.375", bid_size=3, ask_size=4, timestamp="2026-01-02T15:05:00.5Z"
        )
        await simulator.drop_connections()
        await eventually(lambda: notices(messages, "gap.filled"), what="gap.filled")

        after = await cached(redis_client, "TSLA")
        assert after is not None
        assert (after["bid"], after["ask"], after["mid"]) == ("251.25", "251.375", "251.3125")
        assert (after["bid_size"], after["ask_size"]) == (3, 4)
        assert after["timestamp"] == "2026-01-02T15:05:00.5Z"
        assert (after["seq"], after["epoch"]) == (2, stream.epoch)  # seq goes on: +1
        assert simulator.quotes_sent == sent  # nothing was streamed: the fill wrote it

        order = [
            d["event_type"] if c == "market_data.status" else f"price:{d['symbol']}:{d['seq']}"
            for c, d in messages
            if c == "market_data.status" or d["symbol"] == "TSLA"
        ]
        # The reconnect is announced, the price follows, then the gap is closed.
        assert order[-3:] == ["stream.reconnected", "price:TSLA:2", "gap.filled"]
        (filled,) = notices(messages, "gap.filled")
        # AAPL's REST quote is the one already held: not written again.
        assert filled["symbols"] == ["TSLA"]
        assert filled["trigger"] == "stream.reconnected"
        assert filled["requested"] == 2
        assert filled["complete"] is True
        event = next(d for c, d in messages if c == "price.updated.TSLA")
        assert (event["bid"], event["ask"], event["seq"]) == ("251.25", "251.375", 2)

    assert stream.gap_fill is not None
    status = stream.gap_fill.status()
    assert status.last_outcome == "filled"
    assert status.symbols_refreshed == 1
    # One call for the reconnect (the subscription at start found nothing to write).
    assert status.rest_calls == 2


async def test_a_newly_subscribed_quiet_symbol_gets_its_price_at_once(
    simulator: AlpacaSimulator,
    make_stream: StreamFactory,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream(["AAPL"])
    simulator.set_latest_quote("IBM", "150.10", "150.20", timestamp="2026-01-02T14:00:00Z")
    async with pubsub(redis_params) as messages:
        assert await stream.subscribe_symbols(["IBM"]) == ["IBM"]
        price = await wait_cached(redis_client, "IBM", "150.10")
        assert (price["ask"], price["seq"]) == ("150.20", 1)
        await eventually(lambda: notices(messages, "gap.filled"), what="gap.filled")
        (filled,) = notices(messages, "gap.filled")
        assert (filled["trigger"], filled["symbols"]) == ("subscribe", ["IBM"])
        assert [c for c, _ in messages] == ["price.updated.IBM", "market_data.status"]
    assert simulator.quotes_sent == 0  # never streamed


async def test_a_rest_quote_older_than_the_cached_one_never_overwrites_it(
    simulator: AlpacaSimulator,
    make_stream: StreamFactory,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    # A previous run cached a newer quote; this process holds nothing of MSFT (a restart).
    newer = {
        "symbol": "MSFT", "bid": "420.00", "ask": "420.10", "mid": "420.05", "bid_size": 1,
        "ask_size": 1, "timestamp": "2026-01-02T15:00:00.000000002Z", "exchange": "Q",
        "bid_exchange": "Q", "ask_exchange": "Q", "seq": 7, "epoch": "earlier-run",
    }  # fmt: skip
    await redis_client.set("price:MSFT", json.dumps(newer), ttl=300)
    simulator.set_latest_quote(
        "MSFT", "400.00", "400.10", timestamp="2026-01-02T15:00:00.000000001Z"
    )
    simulator.set_latest_quote("AMD", "120.00", "120.05", timestamp="2026-01-02T15:00:00Z")
    async with pubsub(redis_params) as messages:
        stream = await make_stream(["MSFT", "AMD"])
        await wait_cached(redis_client, "AMD", "120.00")
        assert stream.gap_fill is not None
        assert await stream.gap_fill.wait_idle(5)
        assert await stream.sink.flush(5)
        assert await cached(redis_client, "MSFT") == newer
        assert [d["symbol"] for c, d in messages if c.startswith("price.updated.")] == ["AMD"]
        # The processor drops an older streamed quote the same way.
        await simulator.send_quotes([quote("AMD", "119.00", "119.05", t="2026-01-02T14:59:59Z")])
        await simulator.send_quotes([quote("AMD", "121.00", "121.05", t="2026-01-02T15:00:01Z")])
        await wait_cached(redis_client, "AMD", "121.00")


async def test_a_failing_rest_side_skips_the_fill_and_streaming_goes_on(
    simulator: AlpacaSimulator,
    make_stream: StreamFactory,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream(["AAPL"], policy=GapFillPolicy(cooldown=30.0))
    assert stream.gap_fill is not None
    await simulator.send_quotes([quote("AAPL", "190.00", "190.02", t="2026-01-02T15:00:00Z")])
    await wait_cached(redis_client, "AAPL", "190.00")
    simulator.set_latest_quote("AAPL", "191.00", "191.02", timestamp="2026-01-02T15:01:00Z")
    simulator.fail_latest_quotes(503, times=100)
    async with pubsub(redis_params) as messages:
        await simulator.drop_connections()
        await eventually(lambda: stream.gap_fill and stream.gap_fill.status().skipped == 1,
                         what="a skipped fill")  # fmt: skip
        status = stream.gap_fill.status()
        assert (status.last_outcome, status.last_reason) == ("skipped", "rest_unavailable")
        assert status.skipped_by_reason == {"rest_unavailable": 1}
        assert status.last_trigger == "stream.reconnected"
        # Within the cooldown the next gap is skipped without a call.
        calls = status.rest_calls
        await stream.subscribe_symbols(["MSFT"])
        await eventually(lambda: stream.gap_fill and stream.gap_fill.status().skipped == 2,
                         what="a second skip")  # fmt: skip
        assert stream.gap_fill.status().last_reason == "cooling_down"
        assert stream.gap_fill.status().rest_calls == calls
        # Streaming is unaffected.
        await eventually(stream.is_connected, what="reconnected")
        await simulator.send_quotes([quote("AAPL", "192.00", "192.02", t="2026-01-02T15:02:00Z")])
        price = await wait_cached(redis_client, "AAPL", "192.00")
        assert price["seq"] == 2
        assert not notices(messages, "gap.filled")


async def test_a_redis_recovery_fills_every_subscribed_symbol(
    simulator: AlpacaSimulator,
    make_stream: StreamFactory,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream(["AAPL", "MSFT"])
    assert stream.gap_fill is not None
    assert await stream.gap_fill.wait_idle(5)
    simulator.set_latest_quote("AAPL", "190.00", "190.02")
    simulator.set_latest_quote("MSFT", "420.00", "420.10")
    async with pubsub(redis_params) as messages:
        # The notice the sink publishes once writes land again after an outage.
        stream.sink.publish_status("redis.recovered", {"cause": "down", "symbols_rewritten": []})
        await eventually(lambda: notices(messages, "gap.filled"), what="gap.filled")
        (filled,) = notices(messages, "gap.filled")
        assert (filled["trigger"], filled["symbols"]) == ("redis.recovered", ["AAPL", "MSFT"])
    assert (await cached(redis_client, "MSFT") or {}).get("bid") == "420.00"


async def test_without_a_rest_reader_the_stream_has_no_gap_fill(
    simulator: AlpacaSimulator, make_stream: StreamFactory, redis_client: RedisClient
) -> None:
    stream = await make_stream(["TSLA"], rest=False)
    assert stream.gap_fill is None
    simulator.set_latest_quote("TSLA", "251.00", "251.10")
    await simulator.drop_connections()
    await eventually(lambda: stream.connection_stats().connections_opened == 2, what="reconnect")
    # The new session's subscription, not just its socket: a quote sent before it is lost.
    await eventually(lambda: simulator.subscribed_quotes == {"TSLA"}, what="resubscribed")
    await simulator.send_quotes([quote("TSLA", "252.00", "252.10")])
    price = await wait_cached(redis_client, "TSLA", "252.00")
    assert price["seq"] == 1
    assert simulator.rest.requests == []
