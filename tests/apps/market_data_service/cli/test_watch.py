"""``market-data watch``: the screen it draws (rendered without a terminal), and real runs
of the console script against a real redis-server (``--redis``) and a service served in
the test (``--api``, its WebSocket stream), with quotes injected through the simulator.

A run is read line by line as it prints (``--plain``, as when the output is a pipe);
every wait is for a line, with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from apps.market_data_service.cli.board import Board, LinkMessage, PriceMessage, Quote
from apps.market_data_service.cli.watch import render
from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisConnectionParams
from tests.apps.market_data_service.cli.running import MARKET_DATA, clean_environment
from tests.fixtures.service import Service, ServiceFactory
from tests.helpers import eventually, quote

API_KEY = "watch-test-key-0123456789abcdef"
_LINE_TIMEOUT = 20.0

# -- the screen ------------------------------------------------------------------------------


def test_the_screen_has_the_table_the_status_and_the_events() -> None:
    board = Board(["AAPL", "MSFT"])
    stamp = "2026-03-02T14:30:00Z"
    now = 1_772_461_802.0  # 2 s after the stamp
    board.apply(LinkMessage("connected", "ws://127.0.0.1:8004/api/v1/stream"), now)
    first = Quote("AAPL", Decimal("1234.50"), Decimal("1234.60"), Decimal("1234.55"),
                  Decimal(100), Decimal(200), stamp, 1, "e")  # fmt: skip
    board.apply(PriceMessage(first, snapshot=True), now)
    board.apply(PriceMessage(Quote("AAPL", Decimal("1234.40"), Decimal("1234.60"),
                                   Decimal("1234.50"), Decimal(1500), Decimal(2), stamp, 2,
                                   "e")), now)  # fmt: skip
    # A crypto pair's sizes are fractions of a coin, shown exactly (never as 1.2E-7).
    board.apply(PriceMessage(Quote("MSFT", Decimal("71859.53"), Decimal("71939.7"),
                                   Decimal("71899.615"), Decimal("0.00012345"),
                                   Decimal("1.2E-7"), stamp, 1, "e")), now)  # fmt: skip
    screen = render(board, now)
    console = Console(record=True, width=120, color_system=None)
    console.print(screen)
    shown = console.export_text()
    for text in ("Bid", "Ask", "Mid", "Spread", "Age", "1,234.40", "1,234.60", "0.20", "2.0s",
                 "connected", "updates 2", "recent events", "connected: ws://",
                 "1,500 x 2", "0.00012345 x 0.00000012"):  # fmt: skip
        assert text in shown, (text, shown)
    assert "MSFT" in shown
    # The changed cells carry the highlight: bid and mid down (red), spread up (green).
    assert isinstance(screen, Group)
    table = screen.renderables[1]
    assert isinstance(table, Table)
    styles = {}
    for column in table.columns[1:5]:
        cell = next(iter(column.cells))
        assert isinstance(cell, Text)
        styles[str(column.header)] = str(cell.style)
    assert styles == {
        "Bid": "bold white on red",
        "Ask": "",
        "Mid": "bold white on red",
        "Spread": "bold black on green",
    }


# -- real runs ---------------------------------------------------------------------------------


class Watching:
    """A running ``market-data watch``, read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line(self, wanted: str | Callable[[str], bool], what: str = "") -> str:
        """The next printed line that contains ``wanted`` (or satisfies it)."""
        match = (lambda line: wanted in line) if isinstance(wanted, str) else wanted
        assert self.proc.stdout is not None
        async with asyncio.timeout(_LINE_TIMEOUT):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    err = await self._stderr()
                    raise AssertionError(f"output ended before {what or wanted!r}: {err}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if match(line):
                    return line

    async def _stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode()

    async def finish(self) -> tuple[int, str, str]:
        """Wait for the exit: its status, the rest of the output, the error output."""
        async with asyncio.timeout(_LINE_TIMEOUT):
            out, err = await self.proc.communicate()
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()


@asynccontextmanager
async def watching(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Watching]:
    proc = await asyncio.create_subprocess_exec(
        MARKET_DATA, "watch", "--plain", "--duration", "50", *args,
        cwd=cwd, env=env or clean_environment(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield Watching(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def subscribed(service: Service, simulator: AlpacaSimulator, *symbols: str) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": list(symbols)})
    assert reply.status_code == 201, reply.text
    await eventually(lambda: set(symbols) <= simulator.subscribed_quotes, what="subscribed")


async def cached(redis_params: RedisConnectionParams, symbol: str, bid: str) -> None:
    """Wait until ``price:{symbol}`` holds ``bid``."""
    client = redis.asyncio.Redis(**redis_params.redis_kwargs())
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            raw = await client.get(f"price:{symbol}")
            if isinstance(raw, bytes) and f'"bid":"{bid}"'.encode() in raw:
                return
            assert asyncio.get_running_loop().time() < deadline, f"{symbol} not cached: {raw!r}"
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()


async def test_redis_watch_shows_snapshot_updates_and_a_reconnect_then_ctrl_c_exits_0(
    service: Service,
    simulator: AlpacaSimulator,
    redis_params: RedisConnectionParams,
    tmp_path: Path,
) -> None:
    await subscribed(service, simulator, "AAPL")
    await simulator.send_quotes([quote("AAPL", "100.10", "100.20")])
    await cached(redis_params, "AAPL", "100.10")

    url = redis_params.to_url()
    async with watching("AAPL", "MSFT", "--redis", url, cwd=tmp_path) as run:
        await run.line(f"[link] connected: {url}")
        await run.line("AAPL snapshot bid 100.10 ask 100.20 mid 100.15 spread 0.10")
        await simulator.send_quotes([quote("AAPL", "100.11", "100.21")])
        await run.line("AAPL update bid 100.11 ask 100.21 mid 100.16 spread 0.10 seq 2")

        # Redis drops the watcher's connection: it says so, reconnects and resyncs.
        admin = redis.asyncio.Redis(**redis_params.redis_kwargs())
        try:
            assert await admin.client_kill_filter(_type="pubsub") >= 1
        finally:
            await admin.aclose()
        await run.line("[link] connection lost")
        await run.line("[link] reconnected")
        await run.line("[gap] resync AAPL: reconnected")
        await simulator.send_quotes([quote("AAPL", "100.12", "100.22")])
        await run.line("AAPL update bid 100.12 ask 100.22 mid 100.17 spread 0.10 seq 3")

        run.proc.send_signal(signal.SIGINT)  # Ctrl-C
        code, rest, err = await run.finish()
    assert code == 0, err
    assert err == ""
    # The last screen: the table with the newest price, MSFT still waiting for one.
    assert "100.12" in rest and "reconnects 1" in rest and "MSFT" in rest, rest


@pytest.mark.timeout(90)
async def test_api_watch_streams_prices_with_the_key_and_shows_the_gap(
    start_service: ServiceFactory, simulator: AlpacaSimulator, tmp_path: Path
) -> None:
    service = await start_service(market_data_api_key=API_KEY)
    await service.wait_connected()
    service.http.headers["X-API-Key"] = API_KEY
    await subscribed(service, simulator, "AAPL", "MSFT")
    await simulator.send_quotes([quote("AAPL", "200.00", "200.10")])

    env = {**clean_environment(), "MARKET_DATA_API_KEY": API_KEY}
    async with watching("AAPL", "MSFT", "--api", service.url, "--count", "3",
                        cwd=tmp_path, env=env) as run:  # fmt: skip
        await run.line("[link] connected: ws://")
        await run.line("AAPL snapshot bid 200.00 ask 200.10 mid 200.05 spread 0.10")
        await simulator.send_quotes([quote("MSFT", "50.00", "50.02")])
        await run.line("MSFT update bid 50.00 ask 50.02 mid 50.01 spread 0.02")

        # The broker connection drops: the service reconnects and announces the gap.
        await simulator.drop_connections()
        await run.line("[gap] resync")
        await eventually(lambda: simulator.subscribed_quotes >= {"AAPL", "MSFT"}, 10)
        await simulator.send_quotes([quote("AAPL", "200.01", "200.11")])
        await run.line("AAPL update bid 200.01 ask 200.11")
        await simulator.send_quotes([quote("AAPL", "200.02", "200.12")])
        code, rest, err = await run.finish()  # --count 3: it ends by itself
    assert code == 0, err
    assert "200.02" in rest and "updates 3" in rest, rest


async def test_api_watch_with_a_wrong_key_is_one_line_and_exit_1(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    service = await start_service(market_data_api_key=API_KEY)
    env = {**clean_environment(), "MARKET_DATA_API_KEY": "wrong-key-0123456789"}
    async with watching("AAPL", "--api", service.url, cwd=tmp_path, env=env) as run:
        code, _, err = await run.finish()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert "the key from MARKET_DATA_API_KEY" in err and ("401" in err or "403" in err)
    assert "wrong-key" not in err  # never printed

    async with watching("AAPL", "--api", service.url, cwd=tmp_path) as run:  # no key at all
        code, _, err = await run.finish()
    assert code == 1 and "no API key sent: set MARKET_DATA_API_KEY" in err, err


async def test_a_bad_symbol_is_exit_2(tmp_path: Path) -> None:
    async with watching("bad symbol!", "--redis", "redis://127.0.0.1:1", cwd=tmp_path) as run:
        code, out, err = await run.finish()
    assert code == 2 and out == "" and "market-data:" in err, err
