"""The fault suite's harness: the whole service (HTTP app, stream, Redis writer) against
the simulator and a private redis-server, plus the measurements every row reports. The
service is served by the shared harness (:mod:`tests.fixtures.service`).

``lost`` compares the cache's final state with the last quote the simulator sent for each
symbol, after generation stops: a symbol whose cached price is not that quote counts one.
``dropped`` counts quotes the simulator sent that the service never received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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

from apps.market_data_service.config import Settings
from apps.simulator import AlpacaSimulator
from libs.redis_embedded import EmbeddedRedis
from tests.fixtures.service import Service, free_port, serve_as, service_settings
from tests.helpers import eventually

__all__ = [
    "RATE",
    "SYMBOLS",
    "Harness",
    "HealthLog",
    "Running",
    "free_port",
    "harness",
    "service_process",
    "wait_healthy",
    "watch_health",
]

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "TSLA"]
RATE = 400.0  # generated quotes/s across the symbols while a fault is injected


class Running(Service):
    """A service the harness started (the shared harness's :class:`Service`).

    ``health()`` answers ``(status code, body)``, the form the fault rows read.
    """

    async def health(self) -> tuple[int, dict[str, Any]]:  # type: ignore[override]
        return await self.status()


@dataclass
class Harness:
    sim: AlpacaSimulator
    redis_server: EmbeddedRedis
    running: list[Running] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        options: dict[str, Any] = {"reconnect_max_delay": 0.3, **overrides}
        return service_settings(self.sim, self.redis_server.params, **options)

    async def start(self, **overrides: Any) -> Running:
        running = await serve_as(Running, self.settings(**overrides))
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

    async def stream_via(self, port: int) -> None:
        """Subscribe through a service process's API on ``port``; stream until cached."""
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await wait_healthy(http)
            reply = await http.post("/api/v1/subscribe", json={"symbols": SYMBOLS})
            assert reply.status_code == 201, reply.text
        self.sim.set_rate(RATE, batch_size=5)
        await eventually(
            lambda: all(self.cached_mid(s) is not None for s in SYMBOLS), what="streaming"
        )

    def admin(self, *command: str) -> Any:
        """Run one command on the Redis server from outside the service."""
        with redis.Redis(**self.redis_server.params.redis_kwargs()) as client:
            return client.execute_command(*command)

    def saved_subscriptions(self) -> set[str]:
        with redis.Redis(**self.redis_server.params.redis_kwargs()) as client:
            return {k.decode() for k in client.hkeys("market_data:subscriptions")}

    async def dropped(self, running: Running, within: float = 3.0) -> int:
        """Quotes the simulator sent that the service never received (one connection)."""
        stats = running.service.stream.get_connection_stats
        deadline = time.monotonic() + within
        while stats()["quotes_received"] < self.sim.quotes_sent:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        return max(0, self.sim.quotes_sent - int(stats()["quotes_received"]))

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


@dataclass
class HealthLog:
    """What /health said while a fault was on: every answer and how long each took."""

    answers: list[tuple[str, str | None]] = field(default_factory=list)
    slowest: float = 0.0

    def degraded(self, *words: str) -> list[str]:
        """The reasons of the degraded answers that name all of ``words``."""
        return [
            reason
            for status, reason in self.answers
            if status == "degraded" and reason and all(w in reason for w in words)
        ]


@contextlib.asynccontextmanager
async def watch_health(running: Running, every: float = 0.05) -> AsyncIterator[HealthLog]:
    """Poll /health in the background for the duration of the block."""
    log = HealthLog()

    async def poll() -> None:
        while True:
            started = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                _, body = await running.health()
                log.answers.append((body["status"], body.get("reason")))
            log.slowest = max(log.slowest, time.monotonic() - started)
            await asyncio.sleep(every)

    task = asyncio.create_task(poll())
    try:
        yield log
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def service_process(harness: Harness, port: int, cwd: Path, **env: str) -> subprocess.Popen[bytes]:
    """``market-data serve`` as its own process, on the harness's simulator and Redis."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "REDIS_"))},
        "ALPACA_API_KEY": harness.sim.config.api_key,
        "ALPACA_SECRET_KEY": harness.sim.config.secret_key,
        "ALPACA_DATA_URL": harness.sim.url(),
        "REDIS_HOST": harness.redis_server.host,
        "REDIS_PORT": str(harness.redis_server.port),
        "PORT": str(port),
        **env,
    }
    command = [str(Path(sys.executable).parent / "market-data"), "serve"]
    return subprocess.Popen(
        command, env=environment, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


async def wait_healthy(http: httpx.AsyncClient, timeout: float = 15) -> None:
    """Poll a service process's /health until it answers ``healthy``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get("/health")).json()["status"] == "healthy":
                return
        assert time.monotonic() < deadline, "service never became healthy"
        await asyncio.sleep(0.1)
