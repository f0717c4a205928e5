"""Small test helpers: polling with a deadline and a real pub/sub listener."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import redis.asyncio
import uvicorn
from fastapi import FastAPI

from libs.redis_client import RedisConnectionParams

__all__ = [
    "PriceListener",
    "Served",
    "eventually",
    "listen_prices",
    "quote",
    "serve_app",
    "stop_app",
]


async def eventually(
    predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def quote(symbol: str, bid: str, ask: str, **extra: Any) -> dict[str, Any]:
    """A quote dict for ``AlpacaSimulator.send_quotes`` with exact decimal prices."""
    return {"S": symbol, "bx": "Q", "bp": Decimal(bid), "bs": 1, "ax": "P", "ap": Decimal(ask),
            "as": 2, **extra}  # fmt: skip


class PriceListener:
    """Every ``price.updated.*`` event, in arrival order, as parsed JSON."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def prices(self, symbol: str) -> list[str]:
        return [e["price"] for e in self.events if e["symbol"] == symbol]


@contextlib.asynccontextmanager
async def listen_prices(params: RedisConnectionParams) -> AsyncIterator[PriceListener]:
    """A real Redis subscriber on ``price.updated.*`` for the duration of the block."""
    # No read timeout: a quiet channel is not an error for a subscriber.
    client = redis.asyncio.Redis(**{**params.redis_kwargs(), "socket_timeout": None})
    pubsub = client.pubsub()
    await pubsub.psubscribe("price.updated.*")
    listener = PriceListener()

    async def pump() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                event = json.loads(message["data"])
                assert message["channel"].decode() == f"price.updated.{event['symbol']}"
                listener.events.append(event)

    task = asyncio.create_task(pump())
    try:
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()
        await client.aclose()


Served = tuple[uvicorn.Server, "asyncio.Task[None]", str]


async def serve_app(app: FastAPI) -> Served:
    """Serve ``app`` with uvicorn in this event loop on a free loopback port.

    Port 0: the kernel picks the port, read back once bound (no race). Returns the
    server, its task and the base URL.
    """
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve(), name="uvicorn")
    async with asyncio.timeout(10):
        while not server.started:
            assert not task.done(), "the service did not start"
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


async def stop_app(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Shut a served app down the way SIGTERM would (lifespan shutdown included)."""
    server.should_exit = True
    async with asyncio.timeout(15):
        await task
