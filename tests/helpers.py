"""Small test helpers: polling with a deadline, a real pub/sub listener, capturing logs.

The service harness (serving the app, its client, its settings) is
:mod:`tests.fixtures.service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import redis.asyncio

from libs.redis_client import RedisConnectionParams

__all__ = [
    "UVICORN_LOGGERS",
    "CapturedLogs",
    "PriceListener",
    "capture_logs",
    "eventually",
    "eventually_blocking",
    "listen",
    "listen_prices",
    "quote",
    "status_notices",
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


async def eventually_blocking(
    predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition"
) -> None:
    """:func:`eventually` for a predicate that blocks (synchronous Redis calls, one per
    node and symbol): it runs in a thread, so the event loop goes on running the code under
    test. Polled inline, such a check starved the writer under load and timed out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


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
async def listen(
    params: RedisConnectionParams,
    on_message: Callable[[str, Any], None],
    *,
    channels: Sequence[str] = (),
    patterns: Sequence[str] = (),
) -> AsyncIterator[None]:
    """A real Redis subscriber for the block: ``on_message(channel, parsed JSON)`` each."""
    # No read timeout: a quiet channel is not an error for a subscriber.
    client = redis.asyncio.Redis(**{**params.redis_kwargs(), "socket_timeout": None})
    pubsub = client.pubsub()
    if channels:
        await pubsub.subscribe(*channels)
    if patterns:
        await pubsub.psubscribe(*patterns)

    async def pump() -> None:
        async for message in pubsub.listen():
            if message["type"] in ("message", "pmessage"):
                on_message(message["channel"].decode(), json.loads(message["data"]))

    task = asyncio.create_task(pump())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()
        await client.aclose()


@contextlib.asynccontextmanager
async def listen_prices(params: RedisConnectionParams) -> AsyncIterator[PriceListener]:
    """A real Redis subscriber on ``price.updated.*`` for the duration of the block."""
    listener = PriceListener()

    def take(channel: str, event: Any) -> None:
        assert channel == f"price.updated.{event['symbol']}"
        listener.events.append(event)

    async with listen(params, take, patterns=["price.updated.*"]):
        yield listener


@contextlib.asynccontextmanager
async def status_notices(
    params: RedisConnectionParams, channel: str = "market_data.status"
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every notice published on ``market_data.status`` while the block runs."""
    notices: list[dict[str, Any]] = []
    async with listen(params, lambda _, notice: notices.append(notice), channels=[channel]):
        yield notices


# uvicorn's loggers: under uvicorn's own logging config (its default, e.g. ``uvicorn
# app:app`` or ``market-data demo``) "uvicorn" and "uvicorn.access" do not propagate,
# so a handler on the root logger (pytest's caplog) never sees them.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class CapturedLogs(logging.Handler):
    """Every record handled while :func:`capture_logs` ran, each once, in order."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []
        self._seen: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        # The handler sits on a logger and on its ancestors: a record may pass it twice.
        if id(record) not in self._seen:
            self._seen.add(id(record))
            self.records.append(record)

    def named(self, *prefixes: str) -> list[logging.LogRecord]:
        """The records of the loggers named ``prefix`` or below it."""
        return [
            r
            for r in self.records
            if any(r.name == p or r.name.startswith(f"{p}.") for p in prefixes)
        ]


@contextlib.contextmanager
def capture_logs(
    level: int = logging.DEBUG, loggers: tuple[str, ...] = UVICORN_LOGGERS
) -> Iterator[CapturedLogs]:
    """Capture the root logger's records and those of ``loggers`` from ``level`` up.

    The handler is put on each of ``loggers`` itself, not only on the root, so loggers
    that do not propagate are heard too. Levels and handlers are restored afterwards.
    A service served after this starts sets uvicorn's levels from its own settings.
    """
    capture = CapturedLogs()
    targets = [logging.getLogger(), *(logging.getLogger(name) for name in loggers)]
    levels = [(logger, logger.level) for logger in targets]
    for logger in targets:
        logger.addHandler(capture)
        logger.setLevel(level)
    try:
        yield capture
    finally:
        for logger, previous in levels:
            logger.removeHandler(capture)
            logger.setLevel(previous)
