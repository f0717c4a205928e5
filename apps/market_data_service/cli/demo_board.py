"""``market-data demo``'s live table: what it counts, what it reads back, how it draws.

The board counts the ``price.updated.{SYM}`` events of the symbols shown, holds the
prices read back from ``price:{SYM}`` (and ``trade:{SYM}`` with ``--channels trades``)
and the last real-time P&L body; :func:`render_board` draws it for a terminal,
:func:`board_line` as one line for a pipe or a log. The processes it watches are
started by cli/demo.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import httpx
import msgspec
from rich.console import Group
from rich.table import Table
from rich.text import Text

from apps.market_data_service.cli.client import problem_line
from apps.market_data_service.cli.tables import age, count, money, pnl_table
from libs.market_data import PriceData
from libs.market_data.cache.price_cache import price_age_seconds
from libs.market_data.pipeline.sinks import keyspace_for
from libs.redis_client import RedisClient

__all__ = [
    "PNL_PATH",
    "Board",
    "Row",
    "board_line",
    "refresh_pnl",
    "refresh_prices",
    "render_board",
    "reply_body",
]

PNL_PATH: Final = "/api/v1/positions/pnl/realtime"


class _Event(msgspec.Struct):
    """What the board reads of a ``price.updated`` event (other members are ignored)."""

    symbol: str
    price: Decimal  # the mid, as the exact decimal string of the event


_event_decoder = msgspec.json.Decoder(_Event)


@dataclass
class Row:
    updates: int = 0
    mid: Decimal | None = None
    previous_mid: Decimal | None = None
    price: PriceData | None = None
    last_event_at: float = 0.0


@dataclass
class Board:
    symbols: list[str]
    rows: dict[str, Row] = field(default_factory=dict)
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
        row = self.rows.setdefault(event.symbol, Row())
        row.previous_mid, row.mid = row.mid, event.price
        row.updates += 1
        row.last_event_at = time.monotonic()
        self.events += 1


async def refresh_prices(board: Board, client: RedisClient) -> None:
    """Read the shown symbols' cached prices (and last trades) back from Redis."""
    keys = keyspace_for(client)  # price:{AAPL} on a cluster
    values = await client.mget([keys.price_key(symbol) for symbol in board.symbols])
    for symbol, raw in zip(board.symbols, values, strict=True):
        if raw is not None:
            board.rows.setdefault(symbol, Row()).price = PriceData.model_validate_json(raw)
    if board.trades:
        trades = await client.mget([keys.trade_key(symbol) for symbol in board.symbols])
        for symbol, raw in zip(board.symbols, trades, strict=True):
            if raw is not None:
                trade = json.loads(raw)  # price and size: exact decimal strings (crypto)
                board.last_trades[symbol] = f"{trade['size']} @ {trade['price']}"


async def refresh_pnl(board: Board, http: httpx.AsyncClient) -> None:
    """Ask the service for the real-time P&L; an error is shown in its place."""
    try:
        reply = await http.get(PNL_PATH)
    except httpx.HTTPError as exc:
        board.pnl_error = f"P&L unavailable: {exc!r}"
        return
    if reply.status_code == 200:
        board.pnl, board.pnl_error = reply.json(), None
    else:
        body = reply_body(reply)
        board.pnl_error = f"P&L unavailable: {problem_line(reply.status_code, body)}"


def reply_body(reply: httpx.Response) -> Any:
    """The service's answer as JSON, or its text when it is none (a proxy's error page)."""
    try:
        return reply.json()
    except ValueError:
        return reply.text


def render_board(board: Board, wall_clock: float | None = None) -> Group:
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
        row = board.rows.get(symbol, Row())
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


def board_line(board: Board) -> str:
    """The board as one line: each symbol's mid, the events counted, the total P&L."""
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
