"""Fault injection: the whole service (HTTP app, stream, Redis writer) against the simulator
and a private redis-server, one fault per test. Each records a row (injected, survived,
quotes lost from the cache's point of view) printed as a table at the end of the run.

"Lost" compares the cache's final state with the last quote the simulator sent for each
symbol, after generation stops: a symbol whose cached price is not that quote counts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
import uvicorn
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from apps.market_data_service.config import Settings
from apps.market_data_service.main import create_app
from apps.market_data_service.service import MarketDataService
from apps.simulator import AlpacaSimulator
from libs.market_data import BackoffPolicy
from libs.market_data.connection import AlpacaConnection
from libs.market_data.protocol import DecodedFrame
from libs.redis_client import EmbeddedRedis
from tests.fixtures.fault_report import FaultReport
from tests.helpers import eventually, serve_app, stop_app

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "TSLA"]
RATE = 400.0  # generated quotes/s across the symbols while a fault is injected


@dataclass
class Running:
    server: uvicorn.Server
    task: asyncio.Task[None]
    http: httpx.AsyncClient

    @property
    def service(self) -> MarketDataService:
        app: Any = self.server.config.app
        service: MarketDataService = app.state.service
        return service

    async def health(self) -> tuple[int, dict[str, Any]]:
        reply = await self.http.get("/health")
        return reply.status_code, reply.json()

    async def stop(self) -> None:
        await self.http.aclose()
        await stop_app(self.server, self.task)


@dataclass
class Harness:
    sim: AlpacaSimulator
    redis_server: EmbeddedRedis
    running: list[Running] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        options: dict[str, Any] = {
            "alpaca_api_key": self.sim.config.api_key,
            "alpaca_secret_key": self.sim.config.secret_key,
            "alpaca_data_url": self.sim.url(),
            "redis_host": self.redis_server.host,
            "redis_port": self.redis_server.port,
            "reconnect_base_delay": 0.05,
            "reconnect_max_delay": 0.3,
            "_env_file": None,
            **overrides,
        }
        return Settings(**options)

    async def start(self, **overrides: Any) -> Running:
        server, task, url = await serve_app(create_app(self.settings(**overrides)))
        running = Running(server, task, httpx.AsyncClient(base_url=url))
        self.running.append(running)
        return running

    async def stop(self, running: Running) -> None:
        self.running.remove(running)
        await running.stop()

    def cached_mid(self, symbol: str) -> Decimal | None:
        with redis.Redis(**self.redis_server.params.redis_kwargs()) as client:
            raw = client.get(f"price:{symbol}")
        return None if raw is None else Decimal(json.loads(raw)["mid"])

    def expected_mid(self, symbol: str) -> Decimal | None:
        last = self.sim.last_quotes.get(symbol)
        if last is None:
            return None
        return (Decimal(last["bp"]) + Decimal(last["ap"])) / 2

    async def stream_symbols(self, running: Running, symbols: list[str] = SYMBOLS) -> None:
        """Subscribe through the API and let generated quotes flow until all are cached."""
        reply = await running.http.post("/api/v1/subscribe", json={"symbols": symbols})
        assert reply.status_code == 201, reply.text
        await eventually(lambda: set(symbols) <= self.sim.subscribed_quotes, what="subscribed")
        self.sim.set_rate(RATE, batch_size=5)
        await eventually(
            lambda: all(self.cached_mid(s) is not None for s in symbols), what="prices cached"
        )

    async def lost(self, symbols: list[str] = SYMBOLS, within: float = 3.0) -> int:
        """Stop generation; count symbols whose cache does not hold the last quote sent."""
        self.sim.set_rate(0.0)
        deadline = time.monotonic() + within
        while True:
            missing = [s for s in symbols if self.cached_mid(s) != self.expected_mid(s)]
            if not missing or time.monotonic() > deadline:
                return len(missing)
            await asyncio.sleep(0.05)


@pytest.fixture
async def harness(
    simulator_factory: Callable[..., Any], redis_factory: Callable[..., EmbeddedRedis]
) -> AsyncIterator[Harness]:
    sim = await simulator_factory()
    h = Harness(sim=sim, redis_server=redis_factory())
    try:
        yield h
    finally:
        for running in list(h.running):
            await h.stop(running)


@contextlib.asynccontextmanager
async def status_notices(server: EmbeddedRedis) -> AsyncIterator[list[dict[str, Any]]]:
    """Every notice published on ``market_data.status`` while the block runs."""
    client = redis.asyncio.Redis(**{**server.params.redis_kwargs(), "socket_timeout": None})
    pubsub = client.pubsub()
    await pubsub.subscribe("market_data.status")
    notices: list[dict[str, Any]] = []

    async def pump() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                notices.append(json.loads(message["data"]))

    task = asyncio.create_task(pump())
    try:
        yield notices
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()
        await client.aclose()


# -- the faults ----------------------------------------------------------------------------


async def test_server_drops_the_connection_mid_stream(
    harness: Harness, fault_report: FaultReport
) -> None:
    running = await harness.start()
    await harness.stream_symbols(running)
    async with status_notices(harness.redis_server) as notices:
        before = harness.sim.total_connections
        await harness.sim.drop_connections(clean=False)
        await eventually(lambda: harness.sim.total_connections > before, what="reconnect")
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
    lost = await harness.lost()
    notice = next(n for n in notices if n["event_type"] == "stream.reconnected")
    assert notice["gap_seconds"] >= 0
    assert notice["symbols"] == sorted(SYMBOLS)
    fault_report.record(
        "connection dropped mid-stream", injected=True, survived=True, lost=lost,
        note=f"reconnected and resubscribed; gap {notice['gap_seconds']:.2f}s announced",
    )  # fmt: skip
    assert lost == 0


async def test_server_stalls_with_the_socket_open(
    harness: Harness, fault_report: FaultReport
) -> None:
    running = await harness.start(stall_timeout=0.5)
    await harness.stream_symbols(running)
    before = harness.sim.total_connections
    harness.sim.pause()  # socket open, pings answered, no data
    await eventually(lambda: harness.sim.total_connections > before, 5, "stall detected")
    connection = running.service.stream.connection
    assert connection.stalls_detected >= 1
    harness.sim.resume()
    accepted = running.service.stream.get_connection_stats()["quotes_accepted"]
    await eventually(
        lambda: running.service.stream.get_connection_stats()["quotes_accepted"] > accepted,
        what="data after the stall",
    )
    lost = await harness.lost()
    fault_report.record(
        "server stalls, socket open", injected=True, survived=True, lost=lost,
        note="data clock (STALL_TIMEOUT=0.5) reconnected; pings alone kept it open",
    )  # fmt: skip
    assert lost == 0


async def test_connection_limit_406_three_times_then_accepted(
    harness: Harness, fault_report: FaultReport
) -> None:
    running = await harness.start()
    await harness.stream_symbols(running)
    attempts = harness.sim.auth_attempts
    harness.sim.fail_next_auth(406, 406, 406)
    await harness.sim.drop_connections(clean=False)
    await eventually(lambda: harness.sim.auth_attempts >= attempts + 4, what="four auths")
    await eventually(running.service.stream.is_connected, what="accepted on the 4th")
    # Each refused socket was closed by us, not left half-open to hold the slot.
    await eventually(lambda: harness.sim.open_connections == 1, what="one socket")
    lost = await harness.lost()
    fault_report.record(
        "406 three times, then accepted", injected=True, survived=True, lost=lost,
        note=f"{harness.sim.auth_attempts - attempts} auth attempts with backoff",
    )  # fmt: skip
    assert harness.sim.auth_attempts - attempts == 4
    assert lost == 0


async def test_refused_credentials_402_fail_fast_and_health_says_why(
    harness: Harness, fault_report: FaultReport
) -> None:
    harness.sim.fail_next_auth(402)
    running = await harness.start()
    code, body = await running.health()

    async def failed() -> tuple[int, dict[str, Any]]:
        return await running.health()

    deadline = time.monotonic() + 5
    while body["status"] != "unhealthy" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        code, body = await failed()
    await asyncio.sleep(0.5)  # time enough for a retry loop to show itself
    connections = harness.sim.total_connections
    fault_report.record(
        "402 auth failed", injected=True, survived=code == 503, lost=None,
        note=f"{connections} connection attempt(s); /health 503: {body['reason']}",
    )  # fmt: skip
    assert code == 503
    assert body["state"] == "failed"
    assert "402" in body["reason"]
    assert connections == 1


async def test_symbol_limit_405_refuses_one_subscribe_only(
    harness: Harness, fault_report: FaultReport
) -> None:
    running = await harness.start()
    await harness.stream_symbols(running, SYMBOLS[:2])
    harness.sim.reject_next_subscribe(405)
    reply = await running.http.post("/api/v1/subscribe", json={"symbols": ["NVDA", "AMD"]})
    subscriptions = (await running.http.get("/api/v1/subscriptions")).json()
    lost = await harness.lost(SYMBOLS[:2])
    fault_report.record(
        "405 on one subscribe", injected=True, survived=running.service.stream.is_connected(),
        lost=lost, note=f"HTTP {reply.status_code}, refused {reply.json().get('refused_symbols')}",
    )  # fmt: skip
    assert reply.status_code == 409
    assert reply.json()["refused_symbols"] == ["AMD", "NVDA"]
    assert subscriptions["symbols"] == sorted(SYMBOLS[:2])
    assert lost == 0


async def test_slow_client_407_then_close(harness: Harness, fault_report: FaultReport) -> None:
    running = await harness.start()
    await harness.stream_symbols(running)
    before = harness.sim.total_connections
    await harness.sim.send_error(407)
    await harness.sim.drop_connections(clean=True)
    await eventually(lambda: harness.sim.total_connections > before, what="reconnect")
    await eventually(running.service.stream.is_connected, what="connected")
    lost = await harness.lost()
    fault_report.record(
        "407 slow client, then close", injected=True, survived=True, lost=lost,
        note="reconnected with backoff",
    )  # fmt: skip
    assert lost == 0


async def test_redis_killed_and_restarted(harness: Harness, fault_report: FaultReport) -> None:
    running = await harness.start()
    await harness.stream_symbols(running)
    await asyncio.to_thread(harness.redis_server.kill)

    async def degraded() -> bool:
        _, body = await running.health()
        return body["status"] == "degraded" and body["redis_connected"] is False

    deadline = time.monotonic() + 5
    while not await degraded():
        assert time.monotonic() < deadline, "health never said degraded"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the stream keeps reading through the outage
    harness.sim.set_rate(0.0)
    assert running.service.stream.sink.pending_symbols <= len(SYMBOLS)
    await asyncio.to_thread(harness.redis_server.restart)
    back = time.monotonic()
    await eventually(
        lambda: all(harness.cached_mid(s) == harness.expected_mid(s) for s in SYMBOLS),
        what="newest prices rewritten",
    )
    converged = time.monotonic() - back
    lost = await harness.lost()
    survived = running.service.stream.is_connected()
    fault_report.record(
        "Redis killed and restarted", injected=True, survived=survived,
        lost=lost, note=f"cache converged {converged:.2f}s after Redis was back",
    )  # fmt: skip
    assert converged < 1.0
    assert lost == 0


async def test_service_restarted_while_subscribed(
    harness: Harness, fault_report: FaultReport
) -> None:
    first = await harness.start()
    await harness.stream_symbols(first)
    await harness.stop(first)
    await eventually(lambda: harness.sim.open_connections == 0, what="closed on shutdown")
    second = await harness.start()
    await eventually(
        lambda: harness.sim.subscribed_quotes == set(SYMBOLS), what="subscriptions restored"
    )
    subscriptions = (await second.http.get("/api/v1/subscriptions")).json()
    accepted = second.service.stream.get_connection_stats()["quotes_accepted"]
    await eventually(
        lambda: second.service.stream.get_connection_stats()["quotes_accepted"] > accepted,
        what="data after the restart",
    )
    lost = await harness.lost()
    fault_report.record(
        "service restarted while subscribed", injected=True, survived=True, lost=lost,
        note=f"restored {subscriptions['count']} subscriptions from Redis",
    )  # fmt: skip
    assert subscriptions["symbols"] == sorted(SYMBOLS)
    assert lost == 0


async def test_malformed_frame_in_the_middle_of_a_batch(
    harness: Harness, fault_report: FaultReport
) -> None:
    running = await harness.start()
    await harness.stream_symbols(running)
    harness.sim.set_rate(0.0)
    await asyncio.sleep(0.2)
    stats = running.service.stream.get_connection_stats
    malformed = stats()["malformed_messages"]
    frame = (
        '[{"T":"q","S":"AAPL","bp":101.10,"bs":1,"ap":101.20,"as":1,"t":"2026-01-02T15:00:00Z"},'
        '{"T":"q","S":"MSFT","bp":"not a price"},{"garbage":true},'
        '{"T":"q","S":"GOOGL","bp":202.00,"bs":1,"ap":202.04,"as":1,"t":"2026-01-02T15:00:00Z"}]'
    )
    await harness.sim.send_raw(frame)
    await eventually(lambda: stats()["malformed_messages"] == malformed + 2, what="counted")
    expected = {"AAPL": Decimal("101.15"), "GOOGL": Decimal("202.02")}
    await eventually(
        lambda: all(harness.cached_mid(s) == mid for s, mid in expected.items()),
        what="the valid quotes of the batch cached",
    )
    lost = sum(harness.cached_mid(s) != mid for s, mid in expected.items())
    survived = running.service.stream.is_connected()
    fault_report.record(
        "malformed element mid-batch", injected=True, survived=survived,
        lost=lost, note="2 bad elements counted, both good quotes cached",
    )  # fmt: skip
    assert lost == 0


async def test_handshake_429_honours_retry_after(fault_report: FaultReport) -> None:
    attempts: list[float] = []

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            return Response(429, "Too Many Requests", Headers({"Retry-After": "1"}), b"slow down")
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
        finally:
            await connection.stop()
            await asyncio.wait_for(task, 5)
    waited = attempts[1] - attempts[0]
    fault_report.record(
        "HTTP 429 at the handshake", injected=True, survived=True, lost=None,
        note=f"waited {waited:.2f}s (Retry-After: 1, backoff base 0.01s)",
    )  # fmt: skip
    assert waited >= 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sigterm_closes_cleanly_and_exits_fast(
    harness: Harness, fault_report: FaultReport, tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "REDIS_"))},
        "ALPACA_API_KEY": harness.sim.config.api_key,
        "ALPACA_SECRET_KEY": harness.sim.config.secret_key,
        "ALPACA_DATA_URL": harness.sim.url(),
        "REDIS_HOST": harness.redis_server.host,
        "REDIS_PORT": str(harness.redis_server.port),
        "PORT": str(port),
    }
    command = [str(Path(sys.executable).parent / "market-data"), "serve"]
    process = subprocess.Popen(  # noqa: ASYNC220 (waited on in a thread below)
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if (await http.get("/health")).json()["status"] == "healthy":
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "service never became healthy"
                await asyncio.sleep(0.1)
            reply = await http.post("/api/v1/subscribe", json={"symbols": SYMBOLS})
            assert reply.status_code == 201
        harness.sim.set_rate(RATE, batch_size=5)
        await eventually(
            lambda: all(harness.cached_mid(s) is not None for s in SYMBOLS), what="streaming"
        )
        harness.sim.set_rate(0.0)
        await asyncio.sleep(0.2)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 10)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    await eventually(lambda: harness.sim.open_connections == 0, what="socket closed")
    lost = await harness.lost()
    output = process.stdout.read().decode() if process.stdout else ""
    fault_report.record(
        "SIGTERM while streaming", injected=True, survived=code == 0, lost=lost,
        note=f"exit {code} after {took:.2f}s, socket closed, writes flushed",
    )  # fmt: skip
    assert code == 0, output
    assert took < 5
    assert harness.sim.authenticated_connections == 0
    assert lost == 0
