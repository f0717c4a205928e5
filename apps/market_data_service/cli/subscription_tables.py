"""The subscription tables: ``GET /api/v1/subscriptions``'s body, one row per symbol with
its sources and, when the service lists them, its channels (``quotes``, ``trades``,
``bars``); ``*`` is the whole stock market. Many subscriptions are summarised.

The shared rules of every table (ages, counts) are :mod:`apps.market_data_service.cli.tables`'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from rich.table import Table
from rich.text import Text

from apps.market_data_service.cli.tables import age, count

__all__ = ["WILDCARD_LABEL", "stalest", "subscriptions_summary", "subscriptions_table"]

_STALEST: Final = 5
WILDCARD: Final = "*"
WILDCARD_LABEL: Final = "* (whole market)"


def _sources(subs: Mapping[str, Any]) -> dict[str, list[str]]:
    sources = subs.get("sources")
    return sources if isinstance(sources, dict) else {}


def _channels(subs: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """Symbol -> channels; ``None`` when the body has none (every one is quotes)."""
    channels = subs.get("channels")
    return channels if isinstance(channels, dict) else None


def _symbols(subs: Mapping[str, Any]) -> list[str]:
    symbols = subs.get("symbols")
    return [str(s) for s in symbols] if isinstance(symbols, list) else []


def subscriptions_table(
    subs: Mapping[str, Any],
    ages: Mapping[str, float | None] | None = None,
    *,
    symbols: list[str] | None = None,
    title: str | None = None,
) -> Table:
    """Symbol, sources and (when the body has them) channels per subscription
    (``symbols``: only those, in that order); with ``ages`` (``/health``'s
    ``last_update_age_seconds``), the last quote's age."""
    listed = _symbols(subs) if symbols is None else symbols
    total = subs.get("count", len(_symbols(subs)))
    table = Table(title=title or f"Subscriptions ({count(total)})", title_justify="left")
    table.add_column("symbol", style="bold")
    table.add_column("sources")
    channels = _channels(subs)
    if channels is not None:
        table.add_column("channels")
    if ages is not None:
        table.add_column("last quote", justify="right")
    sources = _sources(subs)
    for symbol in listed:
        row = [WILDCARD_LABEL if symbol == WILDCARD else symbol]
        row.append(", ".join(sources.get(symbol, [])) or "-")
        if channels is not None:
            row.append(", ".join(channels.get(symbol, [])) or "-")
        if ages is not None:
            seen = ages.get(symbol)
            # The wildcard has no quote of its own: its symbols are rows of their own.
            row.append("-" if symbol == WILDCARD else "none yet" if seen is None else age(seen))
        table.add_row(*row)
    return table


def stalest(symbols: list[str], ages: Mapping[str, float | None], n: int = _STALEST) -> list[str]:
    """The ``n`` symbols quoted longest ago, those never quoted first (not ``*``)."""

    def key(symbol: str) -> tuple[int, float, str]:
        seen = ages.get(symbol)
        return (0, 0.0, symbol) if seen is None else (1, -seen, symbol)

    return sorted((s for s in symbols if s != WILDCARD), key=key)[:n]


def subscriptions_summary(
    subs: Mapping[str, Any], ages: Mapping[str, float | None]
) -> tuple[Text, Table]:
    """Many subscriptions at a glance: counts by source and by quote, the stalest few."""
    symbols = _symbols(subs)
    named = [s for s in symbols if s != WILDCARD]
    by_source: dict[str, int] = {}
    for names in _sources(subs).values():
        for name in names:
            by_source[name] = by_source.get(name, 0) + 1
    never = sum(1 for s in named if ages.get(s) is None)
    line = Text(f"Subscriptions ({count(subs.get('count', len(symbols)))})", style="bold italic")
    line.append(f": {len(named) - never:,} quoted, {never:,} without a quote yet", style="")
    if WILDCARD in symbols:
        line.append("; and * (the whole stock market)", style="")
    if by_source:
        line.append("; by source: " + ", ".join(f"{k} {v:,}" for k, v in sorted(by_source.items())))
    line.append(" (--all lists every one)", style="")
    picked = stalest(named, ages)
    table = subscriptions_table(
        subs, ages, symbols=picked, title=f"Stalest {len(picked)} of {len(named):,}"
    )
    return line, table
