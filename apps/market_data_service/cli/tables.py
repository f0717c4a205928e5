"""Tables people read, from the service's JSON bodies (rich).

Every table follows the same rules: money and counts with thousands separators (the
exact decimal digits the service sent, never through a float), P&L with an explicit
sign, yes/no instead of true/false, and times as ages ("2.3s ago").
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "LIST_LIMIT",
    "age",
    "console",
    "count",
    "health_table",
    "money",
    "pnl_table",
    "signed",
    "yes_no",
]

_STATUS_STYLE: Final = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}
_WIDE: Final = 160  # a pipe gets this many columns: the P&L table needs them
# Subscriptions listed one per row up to this many; above it, status summarises.
LIST_LIMIT: Final = 20


def console() -> Console:
    """Standard output as rich sees it; a pipe or file gets :data:`_WIDE` columns."""
    out = Console(soft_wrap=False)
    return out if out.is_terminal else Console(soft_wrap=False, width=_WIDE)


# -- values -----------------------------------------------------------------------------------


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def money(value: object, *, sign: bool = False) -> str:
    """``"1234567.8"`` -> ``"1,234,567.8"`` (the digits as sent); ``sign``: ``"+1,234.50"``.

    ``None`` is ``-``; something that is not a number is shown as it is.
    """
    number = _decimal(value)
    if number is None:
        return "-" if value is None else str(value)
    if number.is_zero():
        return format(number.copy_abs(), ",f")  # no "+0.00" nor "-0.00"
    return format(number, "+,f" if sign else ",f")


def signed(value: object) -> Text:
    """P&L: explicit sign, green when positive, red when negative."""
    number = _decimal(value)
    style = "" if number is None or number.is_zero() else ("green" if number > 0 else "red")
    return Text(money(value, sign=True), style=style)


def count(value: object) -> str:
    """An integer with thousands separators; ``-`` when absent."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def yes_no(value: object) -> str:
    return "yes" if value is True else "no" if value is False else "-"


def age(seconds: object) -> str:
    """Seconds as an age: ``"2.3s ago"``, ``"4m 05s ago"``, ``"2h 10m ago"``, ``"3d 4h ago"``."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.1f}s ago"
    whole = int(s)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s ago"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m ago"
    return f"{whole // 86400}d {whole % 86400 // 3600}h ago"


def _since(epoch: object, now: float) -> str:
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return "never"
    return age(now - epoch)


# -- health -----------------------------------------------------------------------------------


def _cache_text(cache: Mapping[str, Any]) -> Text:
    if not cache.get("redis_reachable"):
        return Text(f"Redis unreachable: {cache.get('error') or '?'}", style="red")
    ping = cache.get("redis_ping_ms")
    text = f"ping {ping:.1f} ms; " if isinstance(ping, int | float) else ""
    text += (
        f"{count(cache.get('fresh_symbols'))} fresh, {count(cache.get('stale_symbols'))} stale,"
        f" {count(cache.get('missing_symbols'))} missing"
    )
    oldest = cache.get("oldest_age_seconds")
    if isinstance(oldest, int | float):
        text += f"; oldest {age(oldest)}"
    stale = bool(cache.get("stale_symbols") or cache.get("missing_symbols"))
    return Text(text, style="yellow" if stale else "")


def _quotes_text(stats: Mapping[str, Any]) -> str:
    rejected = stats.get("quotes_rejected")
    rejected_total = (
        sum(v for v in rejected.values() if isinstance(v, int)) if isinstance(rejected, dict) else 0
    )
    return (
        f"{count(stats.get('quotes_accepted'))} accepted of "
        f"{count(stats.get('quotes_received'))}, {rejected_total:,} rejected"
    )


def health_table(health: Mapping[str, Any], now: float | None = None) -> Table:
    """``/health``'s body as a two-column table."""
    current = time.time() if now is None else now
    table = Table(title="Health", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    state = str(health.get("status", "?"))
    table.add_row("status", Text(state, style=_STATUS_STYLE.get(state, "")))
    if health.get("reason"):
        table.add_row("reason", Text(str(health["reason"]), style="yellow"))
    table.add_row("stream", str(health.get("state", "?")))
    table.add_row("websocket connected", yes_no(health.get("websocket_connected")))
    attempts = health.get("reconnect_attempts")
    if isinstance(attempts, int) and attempts:
        table.add_row(
            "reconnect attempts", f"{attempts:,} of {count(health.get('max_reconnect_attempts'))}"
        )
    table.add_row("redis connected", yes_no(health.get("redis_connected")))
    table.add_row("subscribed symbols", count(health.get("subscribed_symbols")))
    ages = health.get("quote_ages")
    if isinstance(ages, dict) and ages.get("wildcard"):
        tracked = count(ages.get("symbols_tracked"))
        table.add_row("whole market (*)", f"subscribed; {tracked} symbols quoted so far")
    stats = health.get("stats")
    if isinstance(stats, dict):
        table.add_row("quotes", _quotes_text(stats))
        if stats.get("last_data_at") is not None:
            table.add_row("last market data", _since(stats.get("last_data_at"), current))
    cache = health.get("cache")
    if isinstance(cache, dict):
        table.add_row("price cache", _cache_text(cache))
    sync = health.get("position_sync")
    if isinstance(sync, dict):
        if not sync.get("enabled"):
            table.add_row("positions sync", "off")
        else:
            failing = int(sync.get("consecutive_failures") or 0)
            interval = sync.get("interval_seconds")
            every = f"every {interval:g}s" if isinstance(interval, int | float) else "on"
            text = Text(
                f"{every}, last success {_since(sync.get('last_success_at'), current)}",
                style="yellow" if failing else "",
            )
            if failing:
                text.append(f", failing ({failing} in a row): {sync.get('last_error')}")
            table.add_row("positions sync", text)
    return table


# -- P&L --------------------------------------------------------------------------------------


def pnl_table(pnl: Mapping[str, Any]) -> Table:
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
        ("price age", ""),
        ("cost basis", money(totals.get("total_cost_basis"))),
        ("market value", money(totals.get("total_market_value"))),
        ("P&L", signed(totals.get("total_unrealized_pl"))),
        ("P&L %", signed(totals.get("total_unrealized_pl_pct"))),
    )
    for index, (name, footer) in enumerate(columns):
        left = index < 2 or name == "source"
        table.add_column(name, footer=footer, justify="left" if left else "right")
    for row in pnl.get("positions") or []:
        source = str(row.get("price_source"))
        table.add_row(
            str(row.get("symbol")),
            str(row.get("side")),
            money(row.get("qty")),
            money(row.get("avg_entry_price")),
            money(row.get("current_price")),
            Text(source, style="" if source == "realtime" else "yellow"),
            age(row.get("price_age_seconds")),
            money(row.get("cost_basis")),
            money(row.get("market_value")),
            signed(row.get("unrealized_pl")),
            signed(row.get("unrealized_pl_pct")),
        )
    return table
