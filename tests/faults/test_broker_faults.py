"""Faults on the broker's side and in the service's own life: one fault per test, each
recording a measured row in the fault table (``tests/fixtures/fault_report.py``)."""

from __future__ import annotations

import asyncio
import signal
import time
from decimal import Decimal
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from libs.market_data import BackoffPolicy
from libs.market_data.stream.connection import AlpacaConnection
from libs.market_data.stream.protocol import DecodedFrame
from tests.faults.harness import (
    SYMBOLS,
    Harness,
    free_port,
    service_process,
)
from tests.fixtures.fault_report import FaultReport
from tests.helpers import eventually, status_notices

__all__: list[str] = []


async def test_server_drops_the_connection_mid_stream(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("connection dropped mid-stream") as row:
        running = await harness.start()
        await harness.stream_symbols(running)
        async with status_notices(harness.redis_server.params) as notices:
            before = harness.sim.total_connections
            await harness.sim.drop_connections(clean=False)
            await eventually(lambda: harness.sim.total_connections > before, what="reconnect")
            row.injected = f"{harness.sim.total_connections - before} new connection(s)"
            await eventually(
                lambda: (
                    running.service.stream.is_connected()
                    and set(SYMBOLS) <= harness.sim.subscribed_quotes
                ),
                what="resubscribed",
            )
            await eventually(
                lambda: any(n["event_type"] == "stream.reconnected" for n in notices),
                what="gap notice",
            )
        row.lost = await harness.lost()
        row.survived = running.service.stream.is_connected()
        notice = next(n for n in notices if n["event_type"] == "stream.reconnected")
        row.note = f"resubscribed; gap {notice['gap_seconds']:.2f}s announced"
        assert notice["gap_seconds"] >= 0
        assert notice["symbols"] == sorted(SYMBOLS)
        assert row.lost == 0


async def test_server_stalls_with_the_socket_open(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("server stalls, socket open") as row:
        running = await harness.start(stall_timeout=0.5)
        await harness.stream_symbols(running)
        before = harness.sim.total_connections
        harness.sim.pause()  # socket open, pings answered, no data
        await eventually(lambda: harness.sim.total_connections > before, 5, "stall detected")
        connection = running.service.stream.connection
        row.injected = f"{connection.stats().stalls_detected} stall(s) detected"
        assert connection.stats().stalls_detected >= 1
        harness.sim.resume()
        stats = running.service.stream.get_connection_stats
        accepted = stats()["quotes_accepted"]
        await eventually(lambda: stats()["quotes_accepted"] > accepted, what="data after stall")
        row.lost = await harness.lost()
        row.survived = running.service.stream.is_connected()
        row.note = "data clock (STALL_TIMEOUT=0.5) replaced the silent socket"
        assert row.lost == 0


async def test_connection_limit_406_three_times_then_accepted(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("406 three times, then accepted") as row:
        running = await harness.start()
        await harness.stream_symbols(running)
        attempts = harness.sim.auth_attempts
        harness.sim.fail_next_auth(406, 406, 406)
        await harness.sim.drop_connections(clean=False)
        await eventually(lambda: harness.sim.auth_attempts >= attempts + 4, what="four auths")
        await eventually(running.service.stream.is_connected, what="accepted on the 4th")
        row.injected = f"{running.service.stream.connection.stats().error_frames} error frames"
        # Each refused socket was closed by us, not left half-open to hold the slot.
        await eventually(lambda: harness.sim.open_connections == 1, what="one socket")
        row.lost = await harness.lost()
        row.survived = running.service.stream.is_connected()
        row.note = f"{harness.sim.auth_attempts - attempts} auth attempts with backoff"
        assert harness.sim.auth_attempts - attempts == 4
        assert row.lost == 0


async def test_refused_credentials_402_fail_fast_and_health_says_why(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("402 auth failed") as row:
        harness.sim.fail_next_auth(402)
        running = await harness.start()
        code, body = await running.health()
        deadline = time.monotonic() + 5
        while body["status"] != "unhealthy" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            code, body = await running.health()
        row.injected = f"HTTP {code}: {body['reason']}"
        await asyncio.sleep(0.5)  # time enough for a retry loop to show itself
        connections = harness.sim.total_connections
        # Surviving a fatal code means failing fast and saying why, not retrying.
        row.survived = code == 503 and connections == 1
        row.note = f"{connections} connection attempt(s), then 503 with the reason"
        assert code == 503
        assert body["state"] == "failed"
        assert "402" in body["reason"]
        assert connections == 1


async def test_symbol_limit_405_refuses_one_subscribe_only(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("405 on one subscribe") as row:
        running = await harness.start()
        await harness.stream_symbols(running, SYMBOLS[:2])
        harness.sim.reject_next_subscribe(405)
        reply = await running.http.post("/api/v1/subscribe", json={"symbols": ["NVDA", "AMD"]})
        row.injected = f"HTTP {reply.status_code} {reply.json().get('refused_symbols')}"
        subscriptions = (await running.http.get("/api/v1/subscriptions")).json()
        row.lost = await harness.lost(SYMBOLS[:2])
        row.survived = running.service.stream.is_connected()
        assert reply.status_code == 409
        assert reply.json()["refused_symbols"] == ["AMD", "NVDA"]
        assert subscriptions["symbols"] == sorted(SYMBOLS[:2])
        assert row.lost == 0


async def test_slow_client_407_then_close(harness: Harness, fault_report: FaultReport) -> None:
    with fault_report.row("407 slow client, then close") as row:
        running = await harness.start()
        await harness.stream_symbols(running)
        before = harness.sim.total_connections
        await harness.sim.send_error(407)
        await harness.sim.drop_connections(clean=True)
        await eventually(lambda: harness.sim.total_connections > before, what="reconnect")
        row.injected = f"{harness.sim.total_connections - before} new connection(s)"
        await eventually(running.service.stream.is_connected, what="connected")
        row.lost = await harness.lost()
        row.survived = running.service.stream.is_connected()
        row.note = "reconnected with backoff"
        assert row.lost == 0


async def test_service_restarted_while_subscribed(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("service restarted while subscribed") as row:
        first = await harness.start()
        await harness.stream_symbols(first)
        await harness.stop(first)
        await eventually(lambda: harness.sim.open_connections == 0, what="closed on shutdown")
        row.injected = f"{harness.sim.open_connections} socket(s) open after the stop"
        second = await harness.start()
        await eventually(
            lambda: harness.sim.subscribed_quotes == set(SYMBOLS), what="subscriptions restored"
        )
        subscriptions = (await second.http.get("/api/v1/subscriptions")).json()
        stats = second.service.stream.get_connection_stats
        accepted = stats()["quotes_accepted"]
        await eventually(lambda: stats()["quotes_accepted"] > accepted, what="data after restart")
        row.lost = await harness.lost()
        row.survived = second.service.stream.is_connected()
        row.note = f"restored {subscriptions['count']} subscriptions from Redis"
        assert subscriptions["symbols"] == sorted(SYMBOLS)
        assert row.lost == 0


async def test_malformed_frame_in_the_middle_of_a_batch(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("malformed element mid-batch") as row:
        running = await harness.start()
        await harness.stream_symbols(running)
        harness.sim.set_rate(0.0)
        await asyncio.sleep(0.2)
        stats = running.service.stream.get_connection_stats
        malformed = stats()["malformed_messages"]
        frame = (
            '[{"T":"q","S":"AAPL","bp":101.10,"bs":1,"ap":101.20,"as":1,'
            '"t":"2099-01-02T15:00:00Z"},'
            '{"T":"q","S":"MSFT","bp":"not a price"},{"garbage":true},'
            '{"T":"q","S":"GOOGL","bp":202.00,"bs":1,"ap":202.04,"as":1,'
            '"t":"2099-01-02T15:00:00Z"}]'
        )
        await harness.sim.send_raw(frame)
        await eventually(lambda: stats()["malformed_messages"] == malformed + 2, what="counted")
        row.injected = f"{stats()['malformed_messages'] - malformed} bad elements counted"
        expected = {"AAPL": Decimal("101.15"), "GOOGL": Decimal("202.02")}
        await eventually(
            lambda: all(harness.cached_mid(s) == mid for s, mid in expected.items()),
            what="the valid quotes of the batch cached",
        )
        row.lost = sum(harness.cached_mid(s) != mid for s, mid in expected.items())
        row.survived = running.service.stream.is_connected()
        row.note = "the good quotes of the batch cached"
        assert row.lost == 0


async def test_handshake_429_honours_retry_after(fault_report: FaultReport) -> None:
    with fault_report.row("HTTP 429 at the handshake") as row:
        attempts: list[float] = []

        def process_request(connection: ServerConnection, request: Request) -> Response | None:
            attempts.append(time.monotonic())
            if len(attempts) == 1:
                headers = Headers({"Retry-After": "1"})
                return Response(429, "Too Many Requests", headers, b"slow down")
            return None

        async def handler(ws: ServerConnection) -> None:
            await ws.send('[{"T":"success","msg":"connected"}]')
            await ws.recv()
            await ws.send('[{"T":"success","msg":"authenticated"}]')
            await ws.wait_closed()

        async def ignore(frame: DecodedFrame) -> None:
            return None

        async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
            port = server.sockets[0].getsockname()[1]
            connection = AlpacaConnection(
                f"ws://127.0.0.1:{port}/v2/iex", "k", "s", on_frame=ignore,
                backoff=BackoffPolicy(base=0.01, maximum=0.05), compression=None,
            )  # fmt: skip
            task = asyncio.create_task(connection.run())
            try:
                await eventually(connection.is_connected, timeout=5, what="connected after 429")
                row.survived = connection.is_connected()
            finally:
                await connection.stop()
                await asyncio.wait_for(task, 5)
        row.injected = f"{len(attempts) - 1} handshake(s) refused"
        waited = attempts[1] - attempts[0]
        row.note = f"waited {waited:.2f}s (Retry-After: 1, backoff base 0.01s)"
        assert waited >= 1.0


async def test_sigterm_closes_cleanly_and_exits_fast(
    harness: Harness, fault_report: FaultReport, tmp_path: Path
) -> None:
    with fault_report.row("SIGTERM while streaming") as row:
        port = free_port()
        process = service_process(harness, port, tmp_path)
        try:
            await harness.stream_via(port)
            harness.sim.set_rate(0.0)
            await asyncio.sleep(0.2)
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 10)
            took = time.monotonic() - sent
            row.injected = f"exit {code} after {took:.2f}s"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        await eventually(lambda: harness.sim.open_connections == 0, what="socket closed")
        row.lost = await harness.lost()
        row.survived = code == 0 and harness.sim.authenticated_connections == 0
        row.note = "socket closed, writes flushed"
        output = process.stdout.read().decode() if process.stdout else ""
        assert code == 0, output
        assert took < 5
        assert harness.sim.authenticated_connections == 0
        assert row.lost == 0
