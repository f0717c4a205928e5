"""``market-data status`` / ``make status``: the running service at a glance.

Reads the service's own HTTP API (``/health``, ``/api/v1/subscriptions``,
``/api/v1/positions/pnl/realtime``) and prints three tables: health, subscriptions with
their sources, and real-time P&L. Exit code 0 when the service is healthy, 1 when it is
degraded, unhealthy or unreachable, so scripts can use it as a check. A service that
requires an API key gets ``MARKET_DATA_API_KEY`` from the environment.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["fetch_status", "pnl_table", "render_status", "run"]

_STATUS_STYLE = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}
_WIDE = 160  # a pipe gets this many columns: the P&L table needs them


def _get(client: httpx.Client, path: str) -> tuple[int, Any]:
    response = client.get(path)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body


def fetch_status(
    api: str, timeout: float = 10.0, api_key: str | None = None
) -> dict[str, tuple[int, Any]]:
    """Path -> (status code, body) of the three reads; raises ``httpx.HTTPError``.

    ``api_key`` is sent as ``X-API-Key`` for a service configured with
    ``MARKET_DATA_API_KEY``.
    """
    headers = {"X-API-Key": api_key} if api_key else None
    with httpx.Client(base_url=api.rstrip("/"), timeout=timeout, headers=headers) as client:
        return {
            path: _get(client, path)
            for path in ("/health", "/api/v1/subscriptions", "/api/v1/positions/pnl/realtime")
        }


def _ago(epoch: object, now: float) -> str:
    if not isinstance(epoch, int | float):
        return "never"
    return f"{max(0.0, now - epoch):.1f}s ago"


def _seconds(value: object) -> str:
    return f"{value:.1f}s" if isinstance(value, int | float) else "-"


def _signed(value: object) -> Text:
    """A decimal string, green when positive and red when negative (never re-parsed)."""
    if not isinstance(value, str):
        return Text("-")
    style = "red" if value.startswith("-") else ("green" if value.strip("0.") else "")
    return Text(value, style=style)


def _health_table(health: dict[str, Any], now: float) -> Table:
    table = Table(title="Health", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    state = str(health.get("status", "?"))
    table.add_row("status", Text(state, style=_STATUS_STYLE.get(state, "")))
    table.add_row("stream", f"{health.get('state', '?')}")
    table.add_row("websocket connected", str(health.get("websocket_connected")))
    table.add_row("redis connected", str(health.get("redis_connected")))
    table.add_row("subscribed symbols", str(health.get("subscribed_symbols")))
    if health.get("reason"):
        table.add_row("reason", Text(str(health["reason"]), style="yellow"))
    sync = health.get("position_sync")
    if isinstance(sync, dict):
        if not sync.get("enabled"):
            table.add_row("positions sync", "off")
        else:
            failing = int(sync.get("consecutive_failures") or 0)
            text = Text(
                f"every {sync.get('interval_seconds')}s, last success "
                f"{_ago(sync.get('last_success_at'), now)}",
                style="yellow" if failing else "",
            )
            if failing:
                text.append(f", failing ({failing} in a row): {sync.get('last_error')}")
            table.add_row("positions sync", text)
    return table


def _subscriptions_table(subs: dict[str, Any], health: dict[str, Any]) -> Table:
    ages = health.get("last_update_age_seconds") or {}
    table = Table(title=f"Subscriptions ({subs.get('count', 0)})", title_justify="left")
    table.add_column("symbol", style="bold")
    table.add_column("sources")
    table.add_column("last quote", justify="right")
    sources: dict[str, list[str]] = subs.get("sources") or {}
    for symbol in subs.get("symbols") or []:
        age = ages.get(symbol)
        table.add_row(
            symbol,
            ", ".join(sources.get(symbol, [])) or "-",
            "none yet" if age is None else f"{age:.1f}s ago",
        )
    return table


def pnl_table(pnl: dict[str, Any]) -> Table:
    """The real-time P&L body as a table, totals in the footer."""
    table = Table(title="Real-time P&L", title_justify="left", show_footer=True)
    totals = pnl.get("totals") or {}
    columns: tuple[tuple[str, str | Text], ...] = (
        ("symbol", "TOTAL"),
        ("side", ""),
        ("qty", ""),
        ("avg entry", ""),
        ("price", ""),
        ("source", f"{totals.get('priced_positions', 0)}/{totals.get('positions', 0)} priced"),
        ("age", ""),
        ("cost basis", str(totals.get("total_cost_basis", "-"))),
        ("market value", str(totals.get("total_market_value", "-"))),
        ("P&L", _signed(totals.get("total_unrealized_pl"))),
        ("P&L %", _signed(totals.get("total_unrealized_pl_pct"))),
    )
    for index, (name, footer) in enumerate(columns):
        left = index < 2 or name == "source"
        table.add_column(name, footer=footer, justify="left" if left else "right")
    for row in pnl.get("positions") or []:
        source = str(row.get("price_source"))
        table.add_row(
            str(row.get("symbol")),
            str(row.get("side")),
            str(row.get("qty")),
            str(row.get("avg_entry_price")),
            str(row.get("current_price") or "-"),
            Text(source, style="" if source == "realtime" else "yellow"),
            _seconds(row.get("price_age_seconds")),
            str(row.get("cost_basis")),
            str(row.get("market_value") or "-"),
            _signed(row.get("unrealized_pl")),
            _signed(row.get("unrealized_pl_pct")),
        )
    return table


def _problem(title: str, code: int, body: Any) -> Text:
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return Text(f"{title}: HTTP {code}: {detail}", style="red")


def render_status(reads: dict[str, tuple[int, Any]], now: float | None = None) -> Group:
    """The three tables (or what went wrong instead of each) from :func:`fetch_status`."""
    current = time.time() if now is None else now
    parts: list[RenderableType] = []
    _, health = reads["/health"]
    health = health if isinstance(health, dict) else {}
    parts.append(_health_table(health, current))
    subs_code, subs = reads["/api/v1/subscriptions"]
    if subs_code == 200 and isinstance(subs, dict):
        parts.append(_subscriptions_table(subs, health))
    else:
        parts.append(_problem("subscriptions", subs_code, subs))
    pnl_code, pnl = reads["/api/v1/positions/pnl/realtime"]
    if pnl_code == 200 and isinstance(pnl, dict):
        parts.append(pnl_table(pnl))
        for name in ("cache_error", "closing_prices_error"):
            if pnl.get(name):
                parts.append(Text(f"{name.replace('_', ' ')}: {pnl[name]}", style="yellow"))
    else:
        parts.append(_problem("real-time P&L unavailable", pnl_code, pnl))
    return Group(*parts)


def run(api: str, console: Console | None = None) -> int:
    """Print the status of the service at ``api``; the exit code (see the module doc)."""
    if console is None:
        console = Console(soft_wrap=False)
        if not console.is_terminal:
            console = Console(soft_wrap=False, width=_WIDE)
    try:
        reads = fetch_status(api, api_key=os.environ.get("MARKET_DATA_API_KEY") or None)
    except httpx.HTTPError as exc:
        print(f"market-data: cannot reach the service at {api}: {exc}", file=sys.stderr)
        return 1
    console.print(render_status(reads))
    _, health = reads["/health"]
    healthy = isinstance(health, dict) and health.get("status") == "healthy"
    return 0 if healthy else 1
