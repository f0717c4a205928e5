"""``market-data demo``: the whole service on the embedded default, no keys, no internet.

Starts a private ``redis-server``, the Alpaca-protocol simulator and the service on
loopback, subscribes through the HTTP API like any client would, and shows prices as
they land in Redis: events from ``price.updated.{SYM}`` of the symbols shown (the event
counter counts those), bid/ask read back from ``price:{SYM}``. The simulator's account
holds a position in each of ``--symbols`` (long, short, long, ... near the simulated
prices), so the real-time P&L table below the prices moves with the quotes. Ctrl-C stops
everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import uvicorn
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from apps.market_data_service.cli.client import problem_line
from apps.market_data_service.cli.demo_redis import EventFeed, demo_redis
from apps.market_data_service.cli.tables import age, count, money, pnl_table
from apps.market_data_service.config import Settings
from apps.market_data_service.main import create_app
from apps.simulator import AlpacaSimulator, SimulatorConfig
from apps.simulator.quotes import format_price, start_price_cents
from libs.market_data import InvalidSymbolError, PriceData, normalize_symbols
from libs.market_data.cache.price_cache import price_age_seconds
from libs.market_data.pipeline.sinks import keyspace_for
from libs.redis_client import RedisClient

__all__ = ["DEMO_SYMBOLS", "demo_positions", "run"]


class _Event(msgspec.Struct):
    """What the board reads of a ``price.updated`` event (other members are ignored)."""

    symbol: str
    price: Decimal  # the mid, as the exact decimal string of the event


_event_decoder = msgspec.json.Decoder(_Event)
PNL_PATH = "/api/v1/positions/pnl/realtime"
DEMO_SYMBOLS = ("AAPL", "MSFT", "GOOGL")
# (signed qty, entry as a percent of the simulator's start price), taken in turn by the
# demo's symbols: one winner each way and a loser, so both signs of P&L show at once.
_POSITION_SHAPES = ((100, 98), (-50, 101), (25, 102))


def demo_positions(symbols: Sequence[str] = DEMO_SYMBOLS) -> tuple[dict[str, str], ...]:
    """The demo account: a position in each of ``symbols``, as the simulator's
    ``positions`` setting takes them."""
    positions = []
    for index, symbol in enumerate(symbols):
        qty, percent = _POSITION_SHAPES[index % len(_POSITION_SHAPES)]
        entry = format_price(start_price_cents(symbol) * percent // 100)
        positions.append({"symbol": symbol, "qty": str(qty), "avg_entry_price": entry})
    return tuple(positions)


@dataclass
class _Row:
    updates: int = 0
    mid: Decimal | None = None
    previous_mid: Decimal | None = None
    price: PriceData | None = None
    last_event_at: float = 0.0


@dataclass
class _Board:
    symbols: list[str]
    rows: dict[str, _Row] = field(default_factory=dict)
    events: int = 0
    started: float = field(default_factory=time.monotonic)
    pnl: dict[str, Any] | None = None  # the last GET /api/v1/positions/pnl/realtime body
    pnl_error: str | None = None
    trades: bool = False  # show each symbol's last trade (trade:{SYM}) too
    last_trades: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._shown = frozenset(self.symbols)

    def on_event(self, payload: bytes) -> None:
        """Count an event of a shown symbol (any other is not on the board: ignored)."""
        event = _event_decoder.decode(payload)
        if event.symbol not in self._shown:
            return
        row = self.rows.setdefault(event.symbol, _Row())
        row.previous_mid, row.mid = row.mid, event.price
        row.updates += 1
        row.last_event_at = time.monotonic()
        self.events += 1


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_demo(args))
    except KeyboardInterrupt:
        return 130


async def _demo(args: argparse.Namespace) -> int:
    # soft_wrap: a pipe or log is 80 columns to Rich, and it would split the URLs.
    console = Console(soft_wrap=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    try:
        symbols = normalize_symbols(args.symbols)
    except InvalidSymbolError as exc:
        print(f"market-data: {exc}", file=sys.stderr)
        return 2
    console.print("[bold]market-data demo[/]: starting a private Redis and the simulator ...")
    async with (
        demo_redis(getattr(args, "cluster", False)) as redis_server,
        AlpacaSimulator(
            SimulatorConfig(
                port=0, rate=args.rate, batch_size=10, positions=demo_positions(symbols)
            )
        ) as sim,
    ):
        settings = Settings(
            alpaca_api_key=sim.config.api_key,
            alpaca_secret_key=sim.config.secret_key,
            alpaca_data_url=sim.url(),
            # The simulator answers the REST calls too: positions and previous closes.
            alpaca_base_url=sim.http_url(),
            alpaca_data_base_url=sim.http_url(),
            position_sync_interval=5.0,
            **redis_server.settings(),  # one Redis, or REDIS_CLUSTER_NODES (--cluster)
            port=args.port,
            reconnect_base_delay=0.5,
            reconnect_max_delay=10.0,
            log_level=args.log_level,
            _env_file=None,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host="127.0.0.1",
                port=args.port,
                log_level=args.log_level.lower(),
            )
        )
        serving = asyncio.create_task(_serve(server))
        try:
            if not await _started(server, serving):
                console.print(
                    f"[red]could not start the service on 127.0.0.1:{args.port}[/] "
                    "(port in use? try --port)"
                )
                return 1
            base = f"http://127.0.0.1:{args.port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                failure = await _subscribe(http, symbols, getattr(args, "channels", ["quotes"]))
            if failure is not None:
                console.print(f"[red]subscribe failed[/]: {failure}", markup=True, highlight=False)
                return 1
            console.print(
                f"service on [bold]{base}[/]  docs: {base}/docs  health: {base}/health\n"
                f"prices: {base}/api/v1/prices/{symbols[0]}  P&L: {base}{PNL_PATH}"
                f"  metrics: {base}/metrics\n"
                f"simulator {sim.url()}  redis {redis_server.url}  Ctrl-C to stop"
            )
            board = _Board(symbols=symbols, trades="trades" in getattr(args, "channels", ()))
            client = redis_server.client()
            try:
                async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                    await _show(
                        console,
                        board,
                        client,
                        http,
                        feed=await redis_server.feed(client, board.symbols),
                        stop=stop,
                        serving=serving,
                        duration=args.duration,
                    )
            finally:
                await client.close()
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await serving
    console.print("stopped: service, simulator and Redis are down.")
    return 0


async def _subscribe(
    http: httpx.AsyncClient, symbols: list[str], channels: Sequence[str] = ("quotes",)
) -> str | None:
    """Subscribe like any client, in batches of the API's limit; what failed, if any."""
    from apps.market_data_service.api.schemas import MAX_SYMBOLS_PER_REQUEST

    for start in range(0, len(symbols), MAX_SYMBOLS_PER_REQUEST):
        batch = symbols[start : start + MAX_SYMBOLS_PER_REQUEST]
        request = {"symbols": batch, "channels": list(channels)}
        reply = await http.post("/api/v1/subscribe", json=request)
        if not reply.is_success:
            try:
                body: Any = reply.json()
            except ValueError:
                body = reply.text
            return problem_line(reply.status_code, body, reply.reason_phrase)
    return None


async def _serve(server: uvicorn.Server) -> None:
    # uvicorn calls sys.exit() when it cannot start (port in use): a SystemExit would
    # escape the event loop with a traceback; end the task instead, _started reports it.
    with contextlib.suppress(SystemExit):
        await server.serve()


async def _started(server: uvicorn.Server, serving: asyncio.Task[None]) -> bool:
    while not server.started:
        if serving.done():
            return False
        await asyncio.sleep(0.05)
    return True


async def _show(
    console: Console,
    board: _Board,
    client: RedisClient,
    http: httpx.AsyncClient,
    *,
    feed: EventFeed,
    stop: asyncio.Event,
    serving: asyncio.Task[None],
    duration: float | None,
) -> None:
    # The channels of the symbols shown, not price.updated.*: a symbol another client
    # subscribed meanwhile is not on the board, and its events are not counted.
    pubsub = feed
    deadline = None if duration is None else time.monotonic() + duration
    # A terminal gets a live table; a pipe or log gets one line a second.
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    interval = 0.25 if live is not None else 1.0
    next_draw = next_pnl = 0.0
    try:
        with live if live is not None else contextlib.nullcontext():
            while not stop.is_set() and not serving.done():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                while message is not None:
                    board.on_event(message["data"])
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                if time.monotonic() < next_draw:
                    continue
                next_draw = time.monotonic() + interval
                await _refresh_prices(board, client)
                if time.monotonic() >= next_pnl:
                    # Once a second: each call reads the positions from the broker.
                    next_pnl = time.monotonic() + 1.0
                    await _refresh_pnl(board, http)
                if live is not None:
                    live.update(_render(board), refresh=True)
                else:
                    print(_line(board), flush=True)
    finally:
        await pubsub.aclose()


async def _refresh_prices(board: _Board, client: RedisClient) -> None:
    keys = keyspace_for(client)  # price:{AAPL} on a cluster
    values = await client.mget([keys.price_key(symbol) for symbol in board.symbols])
    for symbol, raw in zip(board.symbols, values, strict=True):
        if raw is not None:
            board.rows.setdefault(symbol, _Row()).price = PriceData.model_validate_json(raw)
    if board.trades:
        trades = await client.mget([keys.trade_key(symbol) for symbol in board.symbols])
        for symbol, raw in zip(board.symbols, trades, strict=True):
            if raw is not None:
                trade = json.loads(raw)  # price and size: exact decimal strings (crypto)
                board.last_trades[symbol] = f"{trade['size']} @ {trade['price']}"


async def _refresh_pnl(board: _Board, http: httpx.AsyncClient) -> None:
    try:
        reply = await http.get(PNL_PATH)
    except httpx.HTTPError as exc:
        board.pnl_error = f"P&L unavailable: {exc!r}"
        return
    if reply.status_code == 200:
        board.pnl, board.pnl_error = reply.json(), None
    else:
        try:
            body: Any = reply.json()
        except ValueError:
            body = reply.text
        board.pnl_error = f"P&L unavailable: {problem_line(reply.status_code, body)}"


def _render(board: _Board, wall_clock: float | None = None) -> Group:
    """The live table: prices, spread, events counted, quote age; the P&L below it."""
    table = Table(title="Live prices (from Redis)", expand=False)
    names = ["symbol", "bid", "ask", "mid", "spread (bps)", "updates", "quote age"]
    if board.trades:
        names.append("last trade")
    for name in names:
        table.add_column(name, justify="right" if name not in ("symbol",) else "left")
    now = time.monotonic()
    wall = time.time() if wall_clock is None else wall_clock
    for symbol in board.symbols:
        row = board.rows.get(symbol, _Row())
        price = row.price
        mid_text = Text(money(row.mid))
        if row.mid is not None and row.previous_mid is not None and now - row.last_event_at < 1:
            mid_text.stylize("green" if row.mid >= row.previous_mid else "red")
        spread = (
            f"{(price.ask - price.bid) / price.mid * 10_000:.2f}" if price and price.mid else "-"
        )
        cells: list[str | Text] = [
            symbol,
            money(price.bid) if price else "-",
            money(price.ask) if price else "-",
            mid_text,
            spread,
            count(row.updates),
            age(price_age_seconds(price, wall)) if price else "-",
        ]
        if board.trades:
            cells.append(board.last_trades.get(symbol, "-"))
        table.add_row(*cells)
    elapsed = max(now - board.started, 1e-9)
    footer = Text(f"{board.events:,} events received, {board.events / elapsed:,.1f}/s")
    if board.pnl_error is not None:
        return Group(table, footer, Text(board.pnl_error, style="red"))
    if board.pnl is not None:
        return Group(table, footer, pnl_table(board.pnl))
    return Group(table, footer)


def _line(board: _Board) -> str:
    parts = []
    for symbol in board.symbols:
        row = board.rows.get(symbol)
        parts.append(f"{symbol} {row.mid if row and row.mid is not None else '-'}")
        if board.trades and symbol in board.last_trades:
            parts[-1] += f" (last trade {board.last_trades[symbol]})"
    line = "  ".join(parts) + f"   ({board.events} events)"
    if board.pnl is not None:
        line += f"   P&L {board.pnl['totals']['total_unrealized_pl']}"
    return line


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.Namespace()))
