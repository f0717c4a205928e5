"""``market-data demo``: the whole service on the embedded default, no keys, no internet.

Starts a private ``redis-server``, the Alpaca-protocol simulator and the service on
loopback, subscribes through the HTTP API like any client would, and shows prices as
they land in Redis: events from ``price.updated.{SYM}`` of the symbols shown (the event
counter counts those), bid/ask read back from ``price:{SYM}``. The simulator's account
holds a position in each of ``--symbols`` (long, short, long, ... near the simulated
prices), so the real-time P&L table below the prices moves with the quotes. Ctrl-C stops
everything it started. This module starts and stops the parts; the live table is
cli/demo_board.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence

import httpx
import uvicorn
from rich.console import Console
from rich.live import Live

from apps.market_data_service.cli.client import problem_line
from apps.market_data_service.cli.demo_board import (
    PNL_PATH,
    Board,
    board_line,
    refresh_pnl,
    refresh_prices,
    render_board,
    reply_body,
)
from apps.market_data_service.cli.demo_redis import EventFeed, demo_redis
from apps.market_data_service.cli.demo_shell import demo_symbols, run_demo, stop_on_signals
from apps.market_data_service.config import Settings
from apps.market_data_service.main import create_app
from apps.simulator import AlpacaSimulator, SimulatorConfig
from apps.simulator.quotes import format_price, start_price_cents
from libs.redis_client import RedisClient

__all__ = ["DEMO_SYMBOLS", "demo_positions", "run"]


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


def run(args: argparse.Namespace) -> int:
    return run_demo(_demo, args)


async def _demo(args: argparse.Namespace) -> int:
    # soft_wrap: a pipe or log is 80 columns to Rich, and it would split the URLs.
    console = Console(soft_wrap=True)
    stop = stop_on_signals()
    symbols = demo_symbols(args)
    if symbols is None:
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
            board = Board(symbols=symbols, trades="trades" in getattr(args, "channels", ()))
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
            return problem_line(reply.status_code, reply_body(reply), reply.reason_phrase)
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
    board: Board,
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
                await refresh_prices(board, client)
                if time.monotonic() >= next_pnl:
                    # Once a second: each call reads the positions from the broker.
                    next_pnl = time.monotonic() + 1.0
                    await refresh_pnl(board, http)
                if live is not None:
                    live.update(render_board(board), refresh=True)
                else:
                    print(board_line(board), flush=True)
    finally:
        await pubsub.aclose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.Namespace()))
