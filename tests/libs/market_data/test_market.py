"""The whole market, trades, bars and crypto end to end: the simulator over a real
WebSocket, a real redis-server and a real pub/sub subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio

from apps.simulator import AlpacaSimulator
from libs.market_data import AlpacaMarketDataStream
from libs.redis_client import EventPublisher, RedisClient, RedisConnectionParams
from tests.helpers import eventually, listen, quote

StreamFactory = Callable[..., Awaitable[AlpacaMarketDataStream]]


@pytest.fixture
async def make_stream(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> AsyncIterator[StreamFactory]:
    made: list[tuple[AlpacaMarketDataStream, RedisClient, asyncio.Task[None]]] = []

    async def make(**options: Any) -> AlpacaMarketDataStream:
        client = RedisClient(params=redis_params)
        stream = AlpacaMarketDataStream(
            "sim-key",
            "sim-secret",
            client,
            EventPublisher(client=client),
            price_ttl=300,
            url=simulator.url(),
            crypto_url=simulator.crypto_url(),
            reconnect_base_delay=0.05,
            reconnect_max_delay=0.2,
            step_timeout=2.0,
            compression=None,
            **options,
        )
        task = asyncio.create_task(stream.start())
        made.append((stream, client, task))
        await eventually(stream.is_connected, what="the stream to connect")
        return stream

    yield make
    for stream, client, task in made:
        await stream.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await client.close()


async def read(client: RedisClient, key: str) -> dict[str, Any] | None:
    raw = await client.get(key)
    return None if raw is None else json.loads(raw)


async def handled(stream: AlpacaMarketDataStream, send: Awaitable[None], count: int) -> None:
    """Send one frame and wait until its ``count`` elements were validated and landed."""

    def seen() -> int:
        stats = stream.stats()
        events = stats.events
        return (
            stats.processor.quotes_received
            + events.trades_accepted
            + events.bars_accepted
            + sum(events.trades_rejected.values())
            + sum(events.bars_rejected.values())
        )

    before = seen()
    await send
    await eventually(lambda: seen() >= before + count, what="the frame to be handled")
    assert await stream.sink.flush(5.0)


# -- the whole market -------------------------------------------------------------------------


async def test_wildcard_takes_every_symbol_and_dropping_it_keeps_the_named_ones(
    make_stream: StreamFactory, simulator: AlpacaSimulator, redis_client: RedisClient
) -> None:
    stream = await make_stream()
    await stream.subscribe_symbols(["AAPL", "*"])
    assert stream.get_subscribed_symbols() == ["*", "AAPL"]
    await eventually(lambda: simulator.subscribed_quotes == {"*", "AAPL"}, what="the ack")
    frame = [quote("ZZZQ", "10.00", "10.02"), quote("AAPL", "150.00", "150.02")]
    await handled(stream, simulator.send_quotes(frame), 2)
    # A symbol nobody named is validated, cached and numbered like a named one.
    unnamed = await read(redis_client, "price:ZZZQ")
    assert unnamed is not None and (unnamed["mid"], unnamed["seq"]) == ("10.01", 1)
    # Ages list the named symbols only; the summary counts the wildcard's too.
    assert list(stream.last_update_ages()) == ["AAPL"]
    tracked, stalest = stream.age_summary()
    assert tracked == 2 and {s for s, _ in stalest} == {"AAPL", "ZZZQ"}

    assert await stream.unsubscribe_symbols(["*"]) == ["*"]
    assert stream.get_subscribed_symbols() == ["AAPL"]
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="the unsubscribe")
    frame = [quote("ZZZQ", "11.00", "11.02"), quote("AAPL", "151.00", "151.02")]
    await handled(stream, simulator.send_quotes(frame), 2)
    assert stream.stats().processor.quotes_rejected == {"unsubscribed": 1}
    aapl = await read(redis_client, "price:AAPL")
    assert aapl is not None and aapl["mid"] == "151.01"
    assert stream.age_summary()[0] == 1  # the wildcard's symbols were forgotten


async def test_one_set_per_symbol_per_frame_and_every_event_published(
    make_stream: StreamFactory,
    simulator: AlpacaSimulator,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream()
    await stream.subscribe_symbols(["AAPL", "MSFT"])
    events: list[dict[str, Any]] = []
    async with (
        _monitor(redis_params) as commands,
        listen(redis_params, lambda _, e: events.append(e), patterns=["price.updated.*"]),
    ):
        frame = [quote("AAPL", f"{100 + i}.00", f"{100 + i}.02") for i in range(5)]
        frame += [quote("MSFT", "200.00", "200.02")]
        await handled(stream, simulator.send_quotes(frame), 6)
        await eventually(lambda: len(events) == 6, what="six events")
        await eventually(lambda: sum(c.startswith("PUBLISH") for c in commands) == 6)
    # Two SETs for six quotes (the newest of each symbol), six PUBLISHes, each after
    # the SET of its symbol's newest quote.
    sets = [c for c in commands if c.startswith("SET price:")]
    assert len(sets) == 2, sets
    first_publish = min(i for i, c in enumerate(commands) if c.startswith("PUBLISH"))
    assert max(commands.index(c) for c in sets) < first_publish
    assert [e["seq"] for e in events if e["symbol"] == "AAPL"] == [1, 2, 3, 4, 5]
    cached = await read(redis_client, "price:AAPL")
    assert cached is not None and (cached["mid"], cached["seq"]) == ("104.01", 5)


@contextlib.asynccontextmanager
async def _monitor(params: RedisConnectionParams) -> AsyncIterator[list[str]]:
    """Every command Redis runs while the block runs (MONITOR), as ``NAME arg1 ...``."""
    client = redis.asyncio.Redis(**{**params.redis_kwargs(), "socket_timeout": None})
    commands: list[str] = []
    started = asyncio.Event()

    async def watch() -> None:
        async with client.monitor() as monitor:
            started.set()
            async for info in monitor.listen():
                commands.append(str(info["command"]))

    task = asyncio.create_task(watch())
    await asyncio.wait_for(started.wait(), 5)
    try:
        yield commands
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await client.aclose()


# -- trades and bars ---------------------------------------------------------------------------

TRADE = {"T": "t", "S": "AAPL", "i": 96921, "x": "D", "p": Decimal("126.55"), "s": 100,
         "c": ["@", "I"], "z": "C", "t": "2024-07-24T14:30:01.123456789Z"}  # fmt: skip
BAR = {"T": "b", "S": "AAPL", "o": Decimal("132.65"), "h": Decimal("136"),
       "l": Decimal("132.12"), "c": Decimal("134.65"), "v": 205, "n": 16,
       "vw": Decimal("133.7"), "t": "2024-07-24T14:30:00Z"}  # fmt: skip


async def test_trades_and_bars_are_cached_then_published_beside_the_quote(
    make_stream: StreamFactory,
    simulator: AlpacaSimulator,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream()
    await stream.subscribe(["AAPL"], ["quotes", "trades", "bars"])
    seen: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    pending: list[asyncio.Task[None]] = []

    async def check_cache(channel: str, event: dict[str, Any]) -> None:
        key = {"trade.updated": "trade:", "bar.updated": "bar:", "price.updated": "price:"}
        prefix = channel.rsplit(".", 1)[0]
        seen.append((channel, event, await read(redis_client, key[prefix] + event["symbol"])))

    def on_message(channel: str, event: dict[str, Any]) -> None:
        pending.append(asyncio.create_task(check_cache(channel, event)))

    patterns = ["trade.updated.*", "bar.updated.*", "price.updated.*"]
    async with listen(redis_params, on_message, patterns=patterns):
        frame = [TRADE, BAR, quote("AAPL", "126.50", "126.60")]
        await handled(stream, simulator.send_quotes(frame), 3)
        await eventually(lambda: len(seen) == 3, what="three events")
        await asyncio.gather(*pending)
    trade = await read(redis_client, "trade:AAPL")
    assert trade == {
        "symbol": "AAPL", "price": "126.55", "size": 100,
        "timestamp": "2024-07-24T14:30:01.123456789Z", "exchange": "D", "id": 96921,
        "conditions": ["@", "I"], "tape": "C", "taker_side": None, "seq": 1,
        "epoch": stream.epoch,
    }  # fmt: skip
    bar = await read(redis_client, "bar:AAPL")
    assert bar is not None
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
        "132.65",
        "136",
        "132.12",
        "134.65",
    )
    assert (bar["volume"], bar["vwap"], bar["trade_count"], bar["updated"]) == (
        205,
        "133.7",
        16,
        False,
    )
    assert await redis_client.ttl("trade:AAPL") > 0 and await redis_client.ttl("bar:AAPL") > 0
    by_channel = {channel: (event, cached) for channel, event, cached in seen}
    assert set(by_channel) == {"trade.updated.AAPL", "bar.updated.AAPL", "price.updated.AAPL"}
    for event, cached in by_channel.values():
        # Cache before event: the key already held this event's record when it arrived.
        assert cached is not None and cached["seq"] >= event["seq"] == 1
    assert by_channel["trade.updated.AAPL"][0]["event_type"] == "trade.updated"
    assert by_channel["bar.updated.AAPL"][0]["close"] == "134.65"


async def test_an_updated_bar_replaces_its_minute_and_an_older_bar_is_stale(
    make_stream: StreamFactory, simulator: AlpacaSimulator, redis_client: RedisClient
) -> None:
    stream = await make_stream()
    await stream.subscribe(["AAPL"], ["bars"])
    await handled(stream, simulator.send_quotes([BAR]), 1)
    correction = {**BAR, "T": "u", "h": Decimal("137"), "c": Decimal("136.5"), "v": 230}
    await handled(stream, simulator.send_quotes([correction]), 1)
    bar = await read(redis_client, "bar:AAPL")
    assert bar is not None
    assert (bar["high"], bar["close"], bar["volume"], bar["updated"], bar["seq"]) == (
        "137", "136.5", 230, True, 2
    )  # fmt: skip
    older = {**BAR, "t": "2024-07-24T14:29:00Z"}
    await handled(stream, simulator.send_quotes([older]), 1)
    assert stream.stats().events.bars_rejected == {"stale": 1}
    assert (await read(redis_client, "bar:AAPL") or {})["seq"] == 2


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        ({**TRADE, "p": Decimal("-1.00")}, "negative_price"),
        ({**TRADE, "s": -5}, "negative_size"),
        ({**BAR, "h": Decimal("130"), "l": Decimal("131")}, "out_of_range"),
        ({**BAR, "o": Decimal("140")}, "out_of_range"),
        ({**BAR, "c": Decimal("131")}, "out_of_range"),
        ({**BAR, "l": Decimal("-1")}, "negative_price"),
        ({**BAR, "v": -1}, "negative_size"),
    ],
    ids=[
        "trade-price",
        "trade-size",
        "high-below-low",
        "open-above",
        "close-below",
        "bar-price",
        "bar-volume",
    ],
)
async def test_bad_trades_and_bars_are_dropped_and_counted(
    make_stream: StreamFactory,
    simulator: AlpacaSimulator,
    redis_client: RedisClient,
    element: dict[str, Any],
    reason: str,
) -> None:
    stream = await make_stream()
    await stream.subscribe(["AAPL"], ["trades", "bars"])
    # The bad element does not cost the good quote beside it anything.
    await stream.subscribe_symbols(["MSFT"])
    await handled(stream, simulator.send_quotes([element, quote("MSFT", "1.00", "1.02")]), 2)
    events = stream.stats().events
    assert {**events.trades_rejected, **events.bars_rejected} == {reason: 1}
    kind = "trade" if element["T"] == "t" else "bar"
    assert await redis_client.get(f"{kind}:AAPL") is None
    assert await redis_client.get("price:MSFT") is not None


# -- crypto ----------------------------------------------------------------------------------


async def test_a_crypto_pair_streams_on_its_own_connection_with_exact_fractional_sizes(
    make_stream: StreamFactory, simulator: AlpacaSimulator, redis_client: RedisClient
) -> None:
    stream = await make_stream()
    assert stream.stats().crypto is None  # no pair wanted: no second socket
    assert simulator.total_connections == 1
    await stream.subscribe(["AAPL", "BTC/USD"], ["quotes", "trades"])
    assert stream.crypto_connection.is_connected()
    assert simulator.total_connections == 2
    assert stream.crypto_connection.url.endswith("/v1beta3/crypto/us")
    crypto_quote = {"S": "BTC/USD", "bp": Decimal("71859.53"), "bs": Decimal("0.27994"),
                    "ap": Decimal("71939.7"), "as": Decimal("0.83953")}  # fmt: skip
    crypto_trade = {"T": "t", "S": "BTC/USD", "p": Decimal("71900.1"), "tks": "S",
                    "s": Decimal("0.000012345678"), "i": 3447222699101865076}  # fmt: skip
    await handled(stream, simulator.send_quotes([crypto_quote, crypto_trade]), 2)
    price = await read(redis_client, "price:BTC/USD")
    assert price is not None
    assert (price["bid_size"], price["ask_size"], price["mid"]) == (
        "0.27994",
        "0.83953",
        "71899.615",
    )
    trade = await read(redis_client, "trade:BTC/USD")
    assert trade is not None
    assert (trade["size"], trade["id"], trade["taker_side"], trade["exchange"]) == (
        "0.000012345678", 3447222699101865076, "S", None
    )  # fmt: skip
    crypto = stream.stats().crypto
    assert crypto is not None and crypto.connected and crypto.subscribed_symbols == 2
    # The stock connection never saw the pair (the simulator routes by feed).
    assert stream.stats().processor.quotes_rejected == {}


async def test_the_crypto_connection_reconnects_on_its_own(
    make_stream: StreamFactory, simulator: AlpacaSimulator, redis_client: RedisClient
) -> None:
    stream = await make_stream()
    await stream.subscribe_symbols(["ETH/USD"])
    await simulator.drop_connections()
    await eventually(
        lambda: stream.crypto_connection.is_connected() and stream.is_connected(),
        what="both connections back",
    )
    crypto = stream.stats().crypto
    assert crypto is not None and crypto.connections_opened == 2
    eth = {"S": "ETH/USD", "bp": Decimal("3000.1"), "bs": Decimal("1.5"),
           "ap": Decimal("3000.2"), "as": Decimal("2.25")}  # fmt: skip
    await handled(stream, simulator.send_quotes([eth]), 1)
    assert (await read(redis_client, "price:ETH/USD") or {}).get("bid_size") == "1.5"
