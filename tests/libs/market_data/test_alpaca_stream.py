"""AlpacaMarketDataStream end to end: the simulator over a real WebSocket, a real redis-server,
a real pub/sub subscriber. The spec's stream tests (initialisation, subscriptions, quote
handling, invalid data, connection status, stats) and the reconnect behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from apps.simulator import AlpacaSimulator
from apps.simulator.protocol import ERROR_MESSAGES
from libs.market_data import (
    AlpacaError,
    AlpacaMarketDataStream,
    AuthenticationError,
    ConnectionState,
    InvalidSymbolError,
    QuoteData,
    StreamConnectionError,
    SubscriptionError,
)
from libs.market_data.stream.records import ConnectionStats
from libs.redis_client import EventPublisher, RedisClient, RedisConnectionParams
from tests.fixtures.simulator import SimulatorFactory
from tests.helpers import eventually, listen_prices, quote

StreamFactory = Callable[..., Awaitable[AlpacaMarketDataStream]]


@pytest.fixture
async def make_stream(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> AsyncIterator[StreamFactory]:
    """Build streams wired to the simulator and the test Redis; ``start=True`` runs them."""
    made: list[tuple[AlpacaMarketDataStream, RedisClient, asyncio.Task[None] | None]] = []

    async def make(
        *, start: bool = True, sim: AlpacaSimulator | None = None, **options: Any
    ) -> AlpacaMarketDataStream:
        client = RedisClient(params=redis_params)
        settings: dict[str, Any] = {
            "url": (sim or simulator).url(),
            "price_ttl": 300,
            "reconnect_base_delay": 0.05,
            "reconnect_max_delay": 0.2,
            "step_timeout": 2.0,
            "compression": None,
        }
        settings.update(options)
        stream = AlpacaMarketDataStream(
            settings.pop("api_key", "sim-key"),
            settings.pop("secret_key", "sim-secret"),
            client,
            EventPublisher(client=client),
            **settings,
        )
        task = asyncio.create_task(stream.start()) if start else None
        made.append((stream, client, task))
        return stream

    yield make
    for stream, client, task in made:
        await stream.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await client.close()


async def cached(client: RedisClient, symbol: str) -> dict[str, Any] | None:
    raw = await client.get(f"price:{symbol}")
    return None if raw is None else json.loads(raw)


async def wait_cached(
    client: RedisClient, symbol: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    found: dict[str, Any] | None = None

    async def check() -> bool:
        nonlocal found
        found = await cached(client, symbol)
        return found is not None and predicate(found)

    deadline = asyncio.get_running_loop().time() + 5
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"price:{symbol} never matched"
        await asyncio.sleep(0.01)
    assert found is not None
    return found


# -- before start -------------------------------------------------------------------------


async def test_initial_state(make_stream: StreamFactory) -> None:
    stream = await make_stream(start=False)
    assert not stream.is_connected()
    assert stream.state is ConnectionState.IDLE
    assert stream.get_subscribed_symbols() == []
    stats = stream.get_connection_stats()
    assert stats["reconnect_attempts"] == 0
    assert stats["max_reconnect_attempts"] == 10
    assert stats["quotes_received"] == 0
    # The connection's and the processor's keys, in the order /health shows them (the
    # sink's follow).
    assert list(stats)[:20] == [
        "state", "connected", "url", "reconnect_attempts", "max_reconnect_attempts",
        "subscribed_symbols", "confirmed_symbols", "connections_opened", "frames_received",
        "quotes_received", "quotes_accepted", "quotes_rejected", "malformed_messages",
        "other_messages", "error_frames", "stalls_detected", "last_error", "connected_since",
        "last_data_at", "reconnect_causes",
    ]  # fmt: skip


async def test_subscribe_before_start_normalises_and_filters_duplicates(
    make_stream: StreamFactory,
) -> None:
    stream = await make_stream(start=False)
    assert await stream.subscribe_symbols(["msft", "AAPL", "aapl"]) == ["MSFT", "AAPL"]
    assert await stream.subscribe_symbols(["AAPL", "GOOGL"]) == ["GOOGL"]
    assert stream.get_subscribed_symbols() == ["AAPL", "GOOGL", "MSFT"]
    assert await stream.unsubscribe_symbols(["msft", "TSLA"]) == ["MSFT"]
    assert stream.get_subscribed_symbols() == ["AAPL", "GOOGL"]


async def test_bad_symbol_refused_and_nothing_subscribed(make_stream: StreamFactory) -> None:
    stream = await make_stream(start=False)
    with pytest.raises(InvalidSymbolError):
        await stream.subscribe_symbols(["AAPL", "NOT A TICKER"])
    assert stream.get_subscribed_symbols() == []


def test_bad_ttl_refused(redis_params: RedisConnectionParams) -> None:
    client = RedisClient(params=redis_params)
    with pytest.raises(ValueError, match="price_ttl"):
        AlpacaMarketDataStream("k", "s", client, EventPublisher(client=client), price_ttl=0)


# -- streaming ---------------------------------------------------------------------------


async def test_connects_and_sends_the_subscriptions_made_before_start(
    make_stream: StreamFactory, simulator: AlpacaSimulator
) -> None:
    stream = await make_stream(start=False)
    await stream.subscribe_symbols(["AAPL", "MSFT"])
    task = asyncio.create_task(stream.start())
    try:
        await eventually(stream.is_connected, what="connected")
        assert simulator.subscribed_quotes == {"AAPL", "MSFT"}
        assert stream.get_connection_stats()["confirmed_symbols"] == 2
        # The connection's part of the dict is the typed record, field for field.
        typed = stream.connection_stats()
        assert isinstance(typed, ConnectionStats)
        stats = stream.get_connection_stats()
        for field in dataclasses.fields(typed):
            value = getattr(typed, field.name)
            if field.name == "state":
                value = value.value
            elif field.name == "reconnect_causes":
                value = dict(value)
            assert stats[field.name] == value, field.name
    finally:
        await stream.stop()
        await task
    assert stream.state is ConnectionState.STOPPED
    await eventually(lambda: simulator.open_connections == 0, what="socket closed")


async def test_quote_cached_with_ttl_and_published_with_exact_decimals(
    make_stream: StreamFactory,
    simulator: AlpacaSimulator,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream(price_ttl=120, epoch="E-test")
    assert stream.epoch == "E-test"
    await stream.subscribe_symbols(["AAPL"])
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="subscribed")
    async with listen_prices(redis_params) as listener:
        await simulator.send_quotes(
            [quote("AAPL", "150.10", "150.20", t="2024-07-24T07:56:53.639713735Z")]
        )
        await eventually(lambda: listener.events, what="event")
    price = await cached(redis_client, "AAPL")
    assert price == {
        "symbol": "AAPL",
        "bid": "150.10",
        "ask": "150.20",
        "mid": "150.15",
        "bid_size": 1,
        "ask_size": 2,
        "timestamp": "2024-07-24T07:56:53.639713735Z",
        "exchange": "Q",
        "bid_exchange": "Q",
        "ask_exchange": "P",
        "seq": 1,
        "epoch": "E-test",
    }
    assert 115 <= await redis_client.ttl("price:AAPL") <= 120
    assert listener.events == [
        {
            "event_type": "price.updated",
            "symbol": "AAPL",
            "price": "150.15",
            "bid": "150.10",
            "ask": "150.20",
            "bid_size": 1,
            "ask_size": 2,
            "seq": 1,
            "epoch": "E-test",
            "timestamp": "2024-07-24T07:56:53.639713735Z",
        }
    ]


async def test_invalid_quotes_dropped_and_counted_rest_of_frame_flows(
    make_stream: StreamFactory,
    simulator: AlpacaSimulator,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream()
    await stream.subscribe_symbols(["AAPL", "MSFT"])
    await eventually(lambda: len(simulator.subscribed_quotes) == 2, what="subscribed")
    async with listen_prices(redis_params) as listener:
        await simulator.send_quotes(
            [
                quote("AAPL", "10.00", "10.02"),
                quote("AAPL", "10.05", "10.01"),  # crossed
                quote("MSFT", "-1.00", "10.00"),  # negative price
                quote("MSFT", "20.00", "20.00"),  # locked: valid
                quote("MSFT", "20.00", "20.01", bs=-5),  # negative size
            ]
        )
        await eventually(lambda: len(listener.events) == 2, what="two events")
        await simulator.send_raw('[{"T":"q","S":"AAPL","bp":"x"}, {"T":"q"}]')
        await simulator.send_raw("this is not json")
        await simulator.send_quotes([quote("AAPL", "10.10", "10.12")])
        await eventually(lambda: len(listener.events) == 3, what="event after garbage")
    assert listener.prices("AAPL") == ["10.01", "10.11"]
    assert listener.prices("MSFT") == ["20.00"]
    assert (await cached(redis_client, "MSFT") or {})["mid"] == "20.00"
    stats = stream.get_connection_stats()
    assert stats["quotes_accepted"] == 3
    assert stats["quotes_rejected"] == {"crossed": 1, "negative_price": 1, "negative_size": 1}
    assert stats["malformed_messages"] == 3
    assert stream.is_connected()


async def test_subscribe_while_connected_then_unsubscribe_stops_updates(
    make_stream: StreamFactory,
    simulator: AlpacaSimulator,
    redis_client: RedisClient,
) -> None:
    stream = await make_stream()
    await eventually(stream.is_connected, what="connected")
    assert await stream.subscribe_symbols(["tsla"]) == ["TSLA"]
    assert simulator.subscribed_quotes == {"TSLA"}  # acked before subscribe returned
    await simulator.send_quotes([quote("TSLA", "200.00", "200.02")])
    await wait_cached(redis_client, "TSLA", lambda p: p["mid"] == "200.01")

    assert await stream.unsubscribe_symbols(["TSLA"]) == ["TSLA"]
    assert simulator.subscribed_quotes == frozenset()
    # Alpaca drains its buffers after an unsubscribe: such quotes must not be cached.
    await simulator.send_quotes([quote("TSLA", "300.00", "300.02")])
    await eventually(
        lambda: stream.get_connection_stats()["quotes_rejected"].get("unsubscribed") == 1,
        what="late quote dropped",
    )
    assert (await cached(redis_client, "TSLA") or {})["mid"] == "200.01"


async def test_generated_stream_lands_in_order_per_symbol(
    make_stream: StreamFactory,
    simulator: AlpacaSimulator,
    redis_client: RedisClient,
    redis_params: RedisConnectionParams,
) -> None:
    stream = await make_stream()
    await stream.subscribe_symbols(["AAPL", "MSFT", "GOOGL"])
    await eventually(lambda: len(simulator.subscribed_quotes) == 3, what="subscribed")
    async with listen_prices(redis_params) as listener:
        sent: dict[str, list[str]] = {"AAPL": [], "MSFT": [], "GOOGL": []}
        for i in range(50):
            frame = []
            for n, symbol in enumerate(sent):
                bid = Decimal(100 + n * 100) + Decimal(i) / 100
                frame.append(quote(symbol, str(bid), str(bid + Decimal("0.02"))))
                sent[symbol].append(str(bid + Decimal("0.01")))
            await simulator.send_quotes(frame)
        await eventually(lambda: len(listener.events) == 150, what="150 events")
    for symbol, mids in sent.items():
        assert listener.prices(symbol) == mids
        assert (await cached(redis_client, symbol) or {})["mid"] == mids[-1]


async def test_dropped_connection_reconnects_and_resubscribes(
    make_stream: StreamFactory, simulator: AlpacaSimulator, redis_client: RedisClient
) -> None:
    stream = await make_stream()
    await stream.subscribe_symbols(["AAPL", "MSFT"])
    await eventually(lambda: len(simulator.subscribed_quotes) == 2, what="subscribed")
    await simulator.drop_connections(clean=False)
    await eventually(lambda: simulator.total_connections >= 2, what="reconnect")
    await eventually(
        lambda: stream.is_connected() and simulator.subscribed_quotes == {"AAPL", "MSFT"},
        what="resubscribed",
    )
    await simulator.send_quotes([quote("MSFT", "400.00", "400.04")])
    await wait_cached(redis_client, "MSFT", lambda p: p["mid"] == "400.02")
    stats = stream.get_connection_stats()
    assert stats["connections_opened"] == 2
    assert stats["reconnect_attempts"] == 0  # reset once the new connection delivered data


async def test_reconnect_attempts_reported_then_reset(
    make_stream: StreamFactory, simulator: AlpacaSimulator
) -> None:
    stream = await make_stream(reconnect_base_delay=0.3, reconnect_max_delay=0.3)
    await stream.subscribe_symbols(["AAPL"])
    await eventually(stream.is_connected, what="connected")
    await simulator.drop_connections(clean=True)
    await eventually(
        lambda: stream.get_connection_stats()["reconnect_attempts"] == 1, what="attempt counted"
    )
    assert stream.state is ConnectionState.RECONNECTING
    assert not stream.is_connected()
    await eventually(stream.is_connected, what="reconnected")
    await simulator.send_quotes([quote("AAPL", "1.00", "1.02")])
    await eventually(lambda: stream.get_connection_stats()["reconnect_attempts"] == 0)


async def test_refused_credentials_fail_at_once_without_retrying(
    make_stream: StreamFactory, simulator: AlpacaSimulator
) -> None:
    stream = await make_stream(start=False, secret_key="wrong")
    with pytest.raises(AuthenticationError) as info:
        await asyncio.wait_for(stream.start(), 5)
    assert info.value.code == 402
    assert stream.state is ConnectionState.FAILED
    assert simulator.total_connections == 1
    assert "402" in (stream.get_connection_stats()["last_error"] or "")
    await eventually(lambda: simulator.open_connections == 0, what="socket closed")


@pytest.mark.parametrize("code", [409, 410, 411])
async def test_refused_plan_feed_or_scope_fail_at_once_without_retrying(
    make_stream: StreamFactory, simulator: AlpacaSimulator, code: int
) -> None:
    simulator.fail_next_auth(code)
    stream = await make_stream(start=False)
    with pytest.raises(AuthenticationError) as info:
        await asyncio.wait_for(stream.start(), 5)
    assert info.value.code == code
    assert stream.state is ConnectionState.FAILED
    assert simulator.total_connections == 1
    assert simulator.auth_attempts == 1
    last_error = stream.get_connection_stats()["last_error"] or ""
    assert f"Alpaca error {code}: {ERROR_MESSAGES[code]}" in last_error
    assert "not retrying" in last_error
    # 410 leaves the socket open on the server's side: we close it ourselves.
    await eventually(lambda: simulator.open_connections == 0, what="socket closed")


async def test_gives_up_after_max_attempts_when_nothing_listens(
    make_stream: StreamFactory,
) -> None:
    stream = await make_stream(
        start=False, url="ws://127.0.0.1:9/v2/iex", max_reconnect_attempts=3,
        reconnect_base_delay=0.01, reconnect_max_delay=0.02,
    )  # fmt: skip
    with pytest.raises(StreamConnectionError):
        await asyncio.wait_for(stream.start(), 5)
    stats = stream.get_connection_stats()
    assert stream.state is ConnectionState.FAILED
    assert stats["reconnect_attempts"] == 4
    assert "gave up after 3" in stats["last_error"]


async def test_refused_subscribe_names_the_symbols_and_keeps_the_others(
    make_stream: StreamFactory, simulator: AlpacaSimulator
) -> None:
    stream = await make_stream()
    await stream.subscribe_symbols(["AAPL"])
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="subscribed")
    simulator.reject_next_subscribe(405)
    with pytest.raises(SubscriptionError) as info:
        await stream.subscribe_symbols(["MSFT", "GOOGL"])
    assert info.value.code == 405
    assert info.value.symbols == ["GOOGL", "MSFT"]
    assert stream.get_subscribed_symbols() == ["AAPL"]
    assert simulator.subscribed_quotes == {"AAPL"}
    assert stream.is_connected()


async def test_handle_quote_caches_then_publishes(
    make_stream: StreamFactory, redis_client: RedisClient, redis_params: RedisConnectionParams
) -> None:
    stream = await make_stream(start=False)
    q = QuoteData(
        symbol="AAPL",
        bid_price=Decimal("150.00"),
        ask_price=Decimal("150.10"),
        bid_size=1,
        ask_size=1,
        timestamp=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    async with listen_prices(redis_params) as listener:
        price = await stream.handle_quote(q)
        await eventually(lambda: listener.events, what="event")
    assert price.mid == Decimal("150.05")
    assert (await cached(redis_client, "AAPL") or {})["mid"] == "150.05"
    assert listener.events[0]["price"] == "150.05"
    # Sequenced like the stream's own quotes, in the stream's epoch.
    assert (price.seq, price.epoch) == (1, stream.epoch)
    assert (listener.events[0]["seq"], listener.events[0]["epoch"]) == (1, stream.epoch)
    assert (await stream.handle_quote(q)).seq == 2


async def test_each_stream_has_its_own_epoch(make_stream: StreamFactory) -> None:
    a = await make_stream(start=False)
    b = await make_stream(start=False)
    assert a.epoch and b.epoch and a.epoch != b.epoch


async def test_cache_entries_expire_after_the_ttl(
    make_stream: StreamFactory, simulator: AlpacaSimulator, redis_client: RedisClient
) -> None:
    stream = await make_stream(price_ttl=1)
    await stream.subscribe_symbols(["AAPL"])
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="subscribed")
    await simulator.send_quotes([quote("AAPL", "1.00", "1.02")])
    await wait_cached(redis_client, "AAPL", lambda p: True)
    await asyncio.sleep(1.2)
    assert await cached(redis_client, "AAPL") is None


async def test_stop_while_still_connecting_returns_at_once(make_stream: StreamFactory) -> None:
    # A server whose opening handshake waits until the test lets it go: the stream is
    # held inside the WebSocket connect, with no socket yet to send a close frame on.
    handshake_started = asyncio.Event()
    release = asyncio.Event()
    sessions: list[ServerConnection] = []

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        handshake_started.set()
        await release.wait()
        return None

    async def handler(ws: ServerConnection) -> None:
        sessions.append(ws)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        stream = await make_stream(start=False, url=f"ws://127.0.0.1:{port}/v2/iex")
        task = asyncio.create_task(stream.start())
        try:
            await asyncio.wait_for(handshake_started.wait(), 5)
            assert stream.state is ConnectionState.CONNECTING
            started = asyncio.get_running_loop().time()
            await stream.stop()
            assert asyncio.get_running_loop().time() - started < 1.0
            assert task.done()  # start() returned within stop(), without an error
            await task
        finally:
            release.set()
        assert stream.state is ConnectionState.STOPPED
        assert not stream.is_connected()
        assert stream.get_connection_stats()["connections_opened"] == 0
    assert sessions == []  # the abandoned handshake never became a session


async def test_other_error_on_subscribe_rolls_the_symbols_back(
    make_stream: StreamFactory, simulator: AlpacaSimulator
) -> None:
    stream = await make_stream()
    await stream.subscribe_symbols(["AAPL"])
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="subscribed")
    simulator.reject_next_subscribe(500)
    with pytest.raises(AlpacaError) as info:
        await stream.subscribe_symbols(["MSFT"])
    assert info.value.code == 500
    assert stream.get_subscribed_symbols() == ["AAPL"]


async def test_data_clock_backs_off_on_silent_connections_and_resets_on_data(
    make_stream: StreamFactory, simulator: AlpacaSimulator
) -> None:
    stream = await make_stream(stall_timeout=0.3)
    connection = stream.connection
    await eventually(stream.is_connected, what="connected")
    await asyncio.sleep(0.8)  # nothing subscribed: silence is expected, never a stall
    assert connection.stats().stalls_detected == 0
    await stream.subscribe_symbols(["AAPL"])  # and the simulator sends nothing (rate 0)
    await eventually(lambda: connection.stats().stalls_detected == 1, timeout=3, what="first stall")
    assert connection.clock.stall_timeout == 0.3
    await eventually(
        lambda: connection.stats().stalls_detected == 2, timeout=3, what="second stall"
    )
    # Silent again on a fresh connection: a closed market, not a broken one. Back off.
    assert connection.stall_limit == pytest.approx(1.2)
    # Wait for the third socket itself, established on both ends (ours acked, the
    # simulator's one session authenticated and subscribed), not for a flag the closing
    # second socket might still show: only then can the quote reach a live session.
    await eventually(
        lambda: (
            connection.stats().connections_opened == 3
            and stream.is_connected()
            and simulator.authenticated_connections == 1
            and simulator.subscribed_quotes == {"AAPL"}
        ),
        timeout=5,
        what="the third connection, subscribed",
    )
    await simulator.send_quotes([quote("AAPL", "1.00", "1.02")])
    await eventually(lambda: connection.stall_limit == 0.3, what="reset by data")
    assert connection.stats().stalls_detected == 2
    assert "no market data" in (stream.get_connection_stats()["last_error"] or "")


def clock_tasks() -> int:
    return sum(task.get_name() == "market-data-clock" for task in asyncio.all_tasks())


async def test_data_clock_off_when_stall_timeout_is_none(
    make_stream: StreamFactory, simulator: AlpacaSimulator, simulator_factory: SimulatorFactory
) -> None:
    stream = await make_stream(stall_timeout=None)
    await stream.subscribe_symbols(["AAPL"])
    await eventually(stream.is_connected, what="connected")
    await asyncio.sleep(0.6)
    assert stream.connection.stats().stalls_detected == 0
    assert simulator.total_connections == 1
    # Off, not merely long: no limit and no clock running. The 120 s default, on a
    # second simulator, has both.
    assert stream.connection.stall_limit is None
    assert clock_tasks() == 0
    default = await make_stream(sim=await simulator_factory())
    await default.subscribe_symbols(["AAPL"])
    await eventually(default.is_connected, what="the default stream connected")
    assert default.connection.stall_limit == 120.0
    assert clock_tasks() == 1
