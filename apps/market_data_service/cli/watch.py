"""``market-data watch AAPL MSFT``: a live table of prices, from the service or from Redis.

The data side is :class:`~apps.market_data_service.cli.board.Board` (pure), fed by one
of the feeds of :mod:`~apps.market_data_service.cli.watch_feeds`; this module renders it
(:func:`render`) and runs the loop. On a terminal the table redraws in place (rich
``Live``): bid, ask, mid, spread, age, a changed cell highlighted green (up) or red
(down), a status line (the link and its counters) and the recent events (gaps, resyncs,
reconnects). With ``--plain``, or when the output is not a terminal, it prints one line
per message instead, then the table at the end: for logs, pipes and tests.
``--duration`` and ``--count`` end it on their own; Ctrl-C (or SIGTERM) ends it with
status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from apps.market_data_service.cli.board import (
    Board,
    BoardEvent,
    BoardMessage,
    PriceMessage,
    RowView,
)
from apps.market_data_service.cli.client import EXIT_OK, EXIT_USAGE, CommandError, resolve_api_key
from apps.market_data_service.cli.tables import money
from libs.market_data.exceptions import InvalidSymbolError
from libs.market_data.symbols import normalize_symbols

__all__ = ["WatchOptions", "describe", "render", "run", "watch"]

_REFRESH: Final = 0.25  # seconds between redraws: ages move even when prices do not
_STALE_AGE: Final = 5.0  # an age past this is shown dimmed
_STATE_STYLE: Final = {
    "connecting": "yellow",
    "connected": "green",
    "reconnecting": "bold red",
    "closed": "red",
}
_EVENT_STYLE: Final = {"gap": "yellow", "link": "cyan", "error": "red", "info": ""}
_CHANGE_STYLE: Final = {1: "bold black on green", -1: "bold white on red"}


@dataclass(frozen=True)
class WatchOptions:
    """How long to watch and how to show it."""

    plain: bool = False
    duration: float | None = None
    count: int | None = None


# -- rendering ----------------------------------------------------------------------------------


def _age(seconds: float | None) -> Text:
    if seconds is None:
        return Text("-", style="dim")
    if seconds < 60:
        text = f"{seconds:.1f}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    else:
        text = f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return Text(text, style="dim" if seconds > _STALE_AGE else "")


def _cell(row: RowView, name: str) -> Text:
    if row.quote is None:
        return Text("-", style="dim")
    style = _CHANGE_STYLE.get(row.changes.get(name, 0), "")
    return Text(money(getattr(row.quote, name)), style=style)


def _table(board: Board, now: float) -> Table:
    table = Table(expand=False, header_style="bold")
    table.add_column("Symbol", style="bold")
    for name in ("Bid", "Ask", "Mid", "Spread"):
        table.add_column(name, justify="right")
    table.add_column("Size", justify="right")
    table.add_column("Age", justify="right")
    table.add_column("Seq", justify="right", style="dim")
    table.add_column("Updates", justify="right", style="dim")
    for row in board.rows(now):
        quote = row.quote
        # Exact: "1,000 x 200" for a stock, "0.00012345 x 1.5" for a crypto pair.
        size = "-" if quote is None else f"{money(quote.bid_size)} x {money(quote.ask_size)}"
        table.add_row(
            row.symbol,
            *(_cell(row, name) for name in ("bid", "ask", "mid", "spread")),
            size,
            _age(row.age),
            "-" if quote is None else str(quote.seq),
            f"{row.updates:,}",
        )
    return table


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _event_text(event: BoardEvent) -> Text:
    return Text.assemble((f"{_clock(event.at)} ", "dim"), (event.text, _EVENT_STYLE[event.kind]))


def render(board: Board, now: float) -> RenderableType:
    """The whole screen at ``now``: the status line, the table, the recent events."""
    status = board.status()
    style = _STATE_STYLE[status.state]
    line = Text.assemble(
        ("● ", style), (status.state, style), (f"  {status.detail}", "dim"),
        f"   updates {status.updates:,} · resyncs {status.resyncs:,} · "
        f"reconnects {status.reconnects:,} · not seen {status.skipped:,} · "
        f"coalesced {status.coalesced:,}",
    )  # fmt: skip
    events = board.events
    body: RenderableType = (
        Group(*(_event_text(event) for event in reversed(events)))
        if events
        else Text("none yet", style="dim")
    )
    panel = Panel(
        body, title="recent events (gaps, resyncs, reconnects)", title_align="left", expand=False
    )
    return Group(line, _table(board, now), panel)


def describe(message: BoardMessage) -> str | None:
    """The ``--plain`` line of a price (events have their own lines); None for others."""
    if not isinstance(message, PriceMessage):
        return None
    quote = message.quote
    kind = "snapshot" if message.snapshot else "update"
    return (
        f"{quote.symbol} {kind} bid {quote.bid} ask {quote.ask} mid {quote.mid} "
        f"spread {quote.spread} seq {quote.seq}"
    )


# -- the loop -----------------------------------------------------------------------------------


async def watch(
    feed: AsyncIterator[BoardMessage], board: Board, options: WatchOptions, out: Console
) -> int:
    """Feed ``board`` from ``feed`` and show it until a signal, the duration or the count."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def say(text: str, style: str = "") -> None:
        out.print(Text.assemble((f"{_clock(time.time())} ", "dim"), (text, style)), soft_wrap=True)

    async def pump() -> None:
        async for message in feed:
            added = board.apply(message, time.time())
            if options.plain:
                if (line := describe(message)) is not None:
                    say(line)
                for event in added:
                    say(f"[{event.kind}] {event.text}", _EVENT_STYLE[event.kind])
            if options.count is not None and board.updates >= options.count:
                stop.set()
                return

    task = asyncio.create_task(pump(), name="watch-feed")
    stopping = asyncio.create_task(stop.wait(), name="watch-stop")
    deadline = None if options.duration is None else loop.time() + options.duration
    live = None if options.plain else Live(console=out, auto_refresh=False)
    try:
        with live if live is not None else contextlib.nullcontext():
            while not stop.is_set() and not task.done():
                if live is not None:
                    live.update(render(board, time.time()), refresh=True)
                wait = _REFRESH if deadline is None else min(_REFRESH, deadline - loop.time())
                if wait <= 0:
                    break
                await asyncio.wait({task, stopping}, timeout=wait)
            if live is not None:
                live.update(render(board, time.time()), refresh=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise error  # a CommandError of the feed: one line, its exit code
    if options.plain:
        out.print(render(board, time.time()))
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """``market-data watch``: the feed the arguments name, rendered until stopped."""
    from apps.market_data_service.cli.tables import console
    from apps.market_data_service.cli.watch_feeds import api_feed, redis_feed

    try:
        symbols = normalize_symbols(args.symbols)
    except InvalidSymbolError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if args.count is not None and args.count < 1:
        raise CommandError("--count must be at least 1", EXIT_USAGE)
    if args.duration is not None and args.duration <= 0:
        raise CommandError("--duration must be positive", EXIT_USAGE)
    feed = (
        redis_feed(args.redis, symbols, args.namespace)
        if args.redis
        else api_feed(args.api, resolve_api_key(args.api_key), symbols)
    )
    out = console()
    options = WatchOptions(
        plain=args.plain or not out.is_terminal, duration=args.duration, count=args.count
    )
    return asyncio.run(watch(feed, Board(symbols), options, out))
