"""AlpacaConnection over real sockets: what it tells the server when it closes, which
handshake refusals end it, its typed stats and notices, and when it stops being connected.

A few lines of Alpaca protocol on a real ``websockets`` server stand in for the broker
where the simulator cannot show something (the close code the client sent, any HTTP
status at the handshake); the simulator is used for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from apps.simulator import AlpacaSimulator
from libs.market_data.backoff import BackoffPolicy
from libs.market_data.exceptions import HandshakeError
from libs.market_data.stream.connection import AlpacaConnection, ConnectionState
from libs.market_data.stream.protocol import DecodedFrame
from libs.market_data.stream.records import ConnectionStats, StatusNotice
from libs.market_data.stream.wirelog import WIRE_LOGGER
from tests.helpers import eventually, quote

FAST = BackoffPolicy(base=0.01, maximum=0.05, max_attempts=3)


async def ignore(frame: DecodedFrame) -> None:
    return None


class TinyAlpaca:
    """Greeting, auth and subscription acks; records how each client socket closed.

    ``status``: refuse every handshake with this HTTP status. ``deaf_after_ack``: stop
    reading once the first subscription is acked, so the client's close frame stays
    unanswered until :meth:`hear_again`.
    """

    def __init__(self, *, status: int | None = None, deaf_after_ack: bool = False) -> None:
        self.status = status
        self.deaf_after_ack = deaf_after_ack
        self.handshakes = 0
        self.closes: list[tuple[int | None, str | None]] = []
        self.deaf: list[ServerConnection] = []
        self.url = ""

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        if self.status is not None:
            return connection.respond(self.status, "refused\n")
        return None

    def hear_again(self) -> None:
        """Read the deaf sockets again: the client's close frame is answered at last."""
        for ws in self.deaf:
            ws.transport.resume_reading()
        self.deaf.clear()

    async def handler(self, ws: ServerConnection) -> None:
        quotes: set[str] = set()
        try:
            await ws.send('[{"T":"success","msg":"connected"}]')
            await ws.recv()  # the auth message
            await ws.send('[{"T":"success","msg":"authenticated"}]')
            async for message in ws:
                change: dict[str, Any] = json.loads(message)
                symbols = set(change.get("quotes", []))
                quotes = quotes | symbols if change["action"] == "subscribe" else quotes - symbols
                ack = {"T": "subscription", "trades": [], "quotes": sorted(quotes), "bars": []}
                await ws.send(json.dumps([ack]))
                if self.deaf_after_ack:
                    self.deaf_after_ack = False  # this socket only
                    ws.transport.pause_reading()
                    self.deaf.append(ws)
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        self.closes.append((ws.close_code, ws.close_reason))


@contextlib.asynccontextmanager
async def tiny_alpaca(**options: Any) -> AsyncIterator[TinyAlpaca]:
    server = TinyAlpaca(**options)
    async with serve(
        server.handler, "127.0.0.1", 0, process_request=server.process_request, compression=None
    ) as running:
        server.url = f"ws://127.0.0.1:{running.sockets[0].getsockname()[1]}/v2/iex"
        try:
            yield server
        finally:
            server.hear_again()  # so that no close waits out its timeout at teardown


@contextlib.asynccontextmanager
async def running(connection: AlpacaConnection) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(connection.run())
    try:
        yield task
    finally:
        await connection.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


def connection_to(url: str, **options: Any) -> AlpacaConnection:
    settings: dict[str, Any] = {"on_frame": ignore, "backoff": FAST, "compression": None}
    settings.update(options)
    return AlpacaConnection(url, "sim-key", "sim-secret", **settings)


# -- close codes ---------------------------------------------------------------------------


async def test_stop_closes_with_1000() -> None:
    async with tiny_alpaca() as server:
        connection = connection_to(server.url)
        async with running(connection) as task:
            await connection.subscribe(["AAPL"])
            await eventually(connection.is_connected, what="connected")
            await connection.stop()
            await asyncio.wait_for(task, 5)
        await eventually(lambda: server.closes, what="the server to see the close")
    assert server.closes == [(1000, "")]
    assert connection.state is ConnectionState.STOPPED


async def test_a_stall_closes_with_1000_no_data_and_reconnects() -> None:
    async with tiny_alpaca() as server:
        connection = connection_to(server.url, stall_timeout=0.2)
        async with running(connection):
            await connection.subscribe(["AAPL"])
            await eventually(lambda: server.closes, what="the stalled socket closed")
            assert server.closes[0] == (1000, "no data")
            await eventually(lambda: server.handshakes == 2, what="a new socket")
            await eventually(connection.is_connected, what="reconnected")
            stats = connection.stats()
        assert stats.stalls_detected >= 1
        assert stats.reconnect_causes["stall"] >= 1
        assert "no market data" in (stats.last_error or "")


async def test_not_connected_from_the_moment_a_stalled_socket_starts_closing() -> None:
    # The server stops reading once it acked the resubscription, so our close frame
    # stays unanswered for the close timeout (2 s): all that time the socket is closing
    # and must not count as connected.
    async with tiny_alpaca(deaf_after_ack=True) as server:
        connection = connection_to(server.url, stall_timeout=0.2)
        await connection.subscribe(["AAPL"])  # sent with the resubscription, then deaf
        async with running(connection):
            await eventually(connection.is_connected, what="connected")
            await eventually(lambda: connection.stats().stalls_detected == 1, what="the stall")
            assert server.closes == []  # still closing
            assert not connection.is_connected()
            assert connection.state is ConnectionState.RECONNECTING
            assert connection.stats().connections_opened == 1
            assert await connection.subscribe(["TSLA"]) == ["TSLA"]  # not sent: kept
            assert connection.desired == {"AAPL", "TSLA"}
            server.hear_again()
            await eventually(lambda: server.handshakes == 2, what="a new socket")


# -- fatal handshake refusals --------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_handshake_refused_with_4xx_ends_at_once(status: int) -> None:
    async with tiny_alpaca(status=status) as server:
        connection = connection_to(server.url)
        with pytest.raises(HandshakeError) as info:
            await asyncio.wait_for(connection.run(), 5)
    assert info.value.status == status
    assert server.handshakes == 1
    assert connection.state is ConnectionState.FAILED
    assert f"HTTP {status}" in (connection.last_error or "")
    assert "not retrying" in (connection.last_error or "")


async def test_a_handshake_refused_with_503_is_retried_until_the_attempts_run_out() -> None:
    async with tiny_alpaca(status=503) as server:
        connection = connection_to(server.url)
        with pytest.raises(Exception, match="HTTP 503"):
            await asyncio.wait_for(connection.run(), 5)
    assert server.handshakes == FAST.max_attempts + 1
    assert connection.stats().reconnect_causes == {"handshake": FAST.max_attempts}
    assert "gave up after 3" in (connection.last_error or "")


# -- typed stats and notices ---------------------------------------------------------------


async def test_stats_are_a_typed_snapshot(simulator: AlpacaSimulator) -> None:
    connection = connection_to(simulator.url())
    before = connection.stats()
    assert isinstance(before, ConnectionStats)
    assert (before.state, before.connected, before.connections_opened) == (
        ConnectionState.IDLE,
        False,
        0,
    )
    async with running(connection):
        await connection.subscribe(["AAPL", "MSFT"])
        await eventually(connection.is_connected, what="connected")
        await simulator.send_quotes([quote("AAPL", "1.00", "1.01")])
        await eventually(lambda: connection.stats().last_data_at is not None, what="data")
        stats = connection.stats()
    assert stats.state is ConnectionState.CONNECTED
    assert stats.connected
    assert stats.url == simulator.url()
    assert (stats.subscribed_symbols, stats.confirmed_symbols) == (2, 2)
    assert stats.max_reconnect_attempts == FAST.max_attempts
    assert stats.connections_opened == 1
    assert stats.frames_received >= 3  # greeting, auth, ack, the quote
    assert stats.connected_since is not None
    assert dict(stats.reconnect_causes) == {}
    with pytest.raises(AttributeError):
        stats.frames_received = 0  # type: ignore[misc]


async def test_notices_are_typed_records_in_order(simulator: AlpacaSimulator) -> None:
    notices: list[StatusNotice] = []
    connection = connection_to(simulator.url(), on_notice=notices.append)
    async with running(connection):
        await connection.subscribe(["AAPL"])
        await eventually(connection.is_connected, what="connected")
        await simulator.drop_connections(clean=False)
        await eventually(lambda: len(notices) == 3, what="three notices")
    assert [n.event for n in notices] == [
        "stream.connected",
        "stream.disconnected",
        "stream.reconnected",
    ]
    assert notices[0].details == {"url": simulator.url(), "symbols": ["AAPL"]}
    assert notices[1].details == {"url": simulator.url()}
    assert notices[2].details["gap_seconds"] >= 0
    assert notices[2].details["symbols"] == ["AAPL"]


async def test_a_failing_notice_callback_never_takes_the_session_down(
    simulator: AlpacaSimulator,
) -> None:
    def broken(notice: StatusNotice) -> None:
        raise RuntimeError("listener bug")

    connection = connection_to(simulator.url(), on_notice=broken)
    async with running(connection):
        await eventually(connection.is_connected, what="connected despite the listener")


async def test_the_frame_log_at_debug_never_shows_the_secret(
    simulator: AlpacaSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    connection = connection_to(simulator.url())
    with caplog.at_level(logging.DEBUG, logger=WIRE_LOGGER.name):
        async with running(connection):
            await connection.subscribe(["AAPL"])
            await eventually(connection.is_connected, what="connected")
    wire = [r.getMessage() for r in caplog.records if r.name == WIRE_LOGGER.name]
    assert "> (the auth message: redacted)" in wire
    assert any('"subscribe"' in message for message in wire)  # other frames are logged
    assert not any("sim-secret" in message for message in wire)


# -- fair turns ----------------------------------------------------------------------------


async def test_a_reader_with_frames_waiting_still_gives_the_event_loop_turns(
    simulator: AlpacaSimulator,
) -> None:
    # Frames already buffered come out of recv() without a suspension; only the read
    # loop's turns (libs/market_data/stream/turns.py) let other tasks (the HTTP API,
    # the Redis replies) run between them. A ticker task counts the turns it gets.
    ticks = 0
    seen: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def on_frame(frame: DecodedFrame) -> None:
        seen.append(ticks)

    connection = connection_to(simulator.url(), on_frame=on_frame)
    connection.turn_budget = 0.0  # a turn after every frame
    task = asyncio.create_task(ticker())
    try:
        async with running(connection):
            await connection.subscribe(["AAPL"])
            await eventually(connection.is_connected, what="connected")
            # The client reads nothing while the frames go out, then gets them in one read.
            ws = connection._ws
            assert ws is not None
            ws.transport.pause_reading()
            for i in range(30):
                await simulator.send_quotes([quote("AAPL", f"1.{i:02d}", "2.00")])
            ws.transport.resume_reading()
            await eventually(lambda: len(seen) == 30, what="every frame")
    finally:
        task.cancel()
    assert all(b > a for a, b in itertools.pairwise(seen)), seen
