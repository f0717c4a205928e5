"""``market-data status`` / ``make status``: the running service at a glance.

Reads the service's own HTTP API (``/health``, ``/api/v1/subscriptions``,
``/api/v1/positions/pnl/realtime``) and prints three tables: health, subscriptions with
their sources and last quote, and real-time P&L. More than
:data:`~apps.market_data_service.cli.tables.LIST_LIMIT` subscriptions are summarised
(counts, the stalest few) unless ``--all`` asks for every one.

Exit code 0 only when every call succeeded and the service is healthy; 1 when it is
degraded, unhealthy or unreachable, or a call failed (a 401 for a missing or wrong API
key included), so scripts can use it as a check. The API key comes from where the
service reads it, or ``--api-key`` (:mod:`apps.market_data_service.cli.client`).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Final

from rich.console import Console, Group, RenderableType
from rich.text import Text

from apps.market_data_service.cli import tables
from apps.market_data_service.cli.client import (
    EXIT_FAILED,
    EXIT_OK,
    ApiKey,
    CommandError,
    Reply,
    ServiceClient,
    failure_line,
)
from apps.market_data_service.cli.subscription_tables import (
    subscriptions_summary,
    subscriptions_table,
)
from apps.market_data_service.cli.tables import LIST_LIMIT, health_table, pnl_table

__all__ = ["PATHS", "fetch_status", "pnl_table", "render_status", "run", "status_ok"]

HEALTH: Final = "/health"
SUBSCRIPTIONS: Final = "/api/v1/subscriptions"
PNL: Final = "/api/v1/positions/pnl/realtime"
PATHS: Final = (HEALTH, SUBSCRIPTIONS, PNL)


def fetch_status(
    api: str, timeout: float = 10.0, api_key: ApiKey | None = None
) -> dict[str, Reply]:
    """Path -> :class:`Reply` of the three reads; :class:`CommandError` if unreachable."""
    client = ServiceClient(api, api_key, timeout=timeout)
    try:
        return {path: client.request("GET", path) for path in PATHS}
    finally:
        client.close()


def _failed(what: str, reply: Reply, key: ApiKey | None) -> Text:
    return Text(f"{what}: {failure_line(reply, key)}", style="red")


def render_status(
    reads: dict[str, Reply],
    now: float | None = None,
    *,
    show_all: bool = False,
    api_key: ApiKey | None = None,
) -> Group:
    """The three tables (or one line saying what went wrong instead of each)."""
    current = time.time() if now is None else now
    parts: list[RenderableType] = []
    health_reply = reads[HEALTH]
    health: dict[str, Any] = health_reply.body if isinstance(health_reply.body, dict) else {}
    if "status" in health:  # a 503 of an unhealthy service has the same body
        parts.append(health_table(health, current))
    else:
        parts.append(_failed("health", health_reply, api_key))
    subs = reads[SUBSCRIPTIONS]
    if subs.ok and isinstance(subs.body, dict):
        ages = health.get("last_update_age_seconds")
        ages = ages if isinstance(ages, dict) else {}
        if show_all or int(subs.body.get("count") or 0) <= LIST_LIMIT:
            parts.append(subscriptions_table(subs.body, ages))
        else:
            parts.extend(subscriptions_summary(subs.body, ages))
    else:
        parts.append(_failed("subscriptions", subs, api_key))
    pnl = reads[PNL]
    if pnl.ok and isinstance(pnl.body, dict):
        if pnl.body.get("positions"):
            parts.append(pnl_table(pnl.body))
        else:
            parts.append(Text("Real-time P&L: no open positions", style="italic"))
        for name in ("cache_error", "closing_prices_error"):
            if pnl.body.get(name):
                parts.append(Text(f"{name.replace('_', ' ')}: {pnl.body[name]}", style="yellow"))
    else:
        parts.append(_failed("real-time P&L unavailable", pnl, api_key))
    return Group(*parts)


def status_ok(reads: dict[str, Reply]) -> bool:
    """Every call succeeded and the service says it is healthy."""
    health = reads[HEALTH].body
    healthy = isinstance(health, dict) and health.get("status") == "healthy"
    return healthy and all(reply.ok for reply in reads.values())


def run(
    api: str,
    api_key: ApiKey | None = None,
    *,
    show_all: bool = False,
    console: Console | None = None,
) -> int:
    """Print the status of the service at ``api``; the exit code (see the module doc)."""
    try:
        reads = fetch_status(api, api_key=api_key)
    except CommandError as exc:
        print(f"market-data: {exc}", file=sys.stderr)
        return exc.exit_code
    out = console or tables.console()
    out.print(render_status(reads, show_all=show_all, api_key=api_key))
    return EXIT_OK if status_ok(reads) else EXIT_FAILED
