"""Bodies of ``/health`` and the probes: state, reason, and the parts' records.

The parts live beside it: the stream's counters (``health_stats.py``), the cache and
quote ages (``freshness.py``), the position sync and gap fill (``upkeep.py``), the
election (``leadership.py``); they are importable from here as before.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from apps.market_data_service.api.schemas.freshness import CacheHealth, QuoteAges
from apps.market_data_service.api.schemas.health_stats import HealthStats
from apps.market_data_service.api.schemas.leadership import LeadershipHealth
from apps.market_data_service.api.schemas.stream import StreamingHealth
from apps.market_data_service.api.schemas.upkeep import GapFillHealth, PositionSyncHealth

__all__ = [
    "CacheHealth",
    "GapFillHealth",
    "HealthResponse",
    "HealthStats",
    "LiveResponse",
    "PositionSyncHealth",
    "QuoteAges",
    "ReadyResponse",
]


class HealthResponse(BaseModel):
    """``healthy``, ``degraded`` (with the reason) or ``unhealthy`` (HTTP 503)."""

    status: Literal["healthy", "degraded", "unhealthy"] = Field(
        description=(
            "`healthy`: streaming and Redis reachable; `degraded`: connecting, reconnecting, "
            "Redis unreachable or the positions sync failing; `unhealthy` (503): the stream "
            "gave up."
        ),
        examples=["healthy"],
    )
    service: str = Field(description="SERVICE_NAME.", examples=["market-data-service"])
    websocket_connected: bool = Field(description="The broker WebSocket is connected.")
    subscribed_symbols: int = Field(description="Symbols subscribed.", examples=[3])
    reconnect_attempts: int = Field(
        description="Consecutive failed connection attempts.", examples=[0]
    )
    max_reconnect_attempts: int = Field(
        description="Attempts before giving up (MAX_RECONNECT_ATTEMPTS).", examples=[10]
    )
    state: str = Field(
        description=(
            "The connection's state: `idle`, `connecting`, `connected`, `reconnecting`, "
            "`failed`, `stopped`."
        ),
        examples=["connected"],
    )
    reason: str | None = Field(
        default=None,
        description="Why the status is not `healthy`; null when it is.",
        examples=[None],
    )
    redis_connected: bool = Field(description="The Redis writer's connection is up.")
    stats: HealthStats = Field(description="The stream's counters.")
    last_update_age_seconds: dict[str, float | None] = Field(
        default={},
        description=(
            "Seconds since each subscribed symbol's last accepted quote (null: none yet). A "
            "quiet symbol is not unhealthy by itself; only a silent feed is."
        ),
        examples=[{"AAPL": 0.42, "MSFT": None}],
    )
    cache: CacheHealth | None = Field(
        default=None, description="The price cache as Redis holds it."
    )
    quote_ages: QuoteAges | None = Field(
        default=None, description="Quote ages summed up (bounded with 10,000+ symbols)."
    )
    position_sync: PositionSyncHealth | None = Field(
        default=None, description="The subscriptions that follow open positions."
    )
    gap_fill: GapFillHealth | None = Field(
        default=None, description="The gap fill from REST latest quotes."
    )
    quote_path: str = Field(
        default="native",
        description="`native`: the stock feed's plain quote frames are handled in C; "
        "`python (...)`: every frame takes the Python path, with the reason (same results, "
        'slower; docs/architecture.md, "Native quote path").',
        examples=["native"],
    )
    role: Literal["leader", "standby", "single"] = Field(
        default="single",
        description="`leader` or `standby` with LEADER_ELECTION=redis (docs/leadership.md); "
        "`single` without.",
        examples=["leader"],
    )
    leadership: LeadershipHealth | None = Field(
        default=None, description="The leader election, when on (LEADER_ELECTION=redis)."
    )
    streaming: StreamingHealth | None = Field(
        default=None, description="The live stream's clients and reader (docs/streaming.md)."
    )


class LiveResponse(BaseModel):
    """The process serves HTTP."""

    status: Literal["alive"] = Field(description="Always `alive`.", examples=["alive"])


class ReadyResponse(BaseModel):
    """The service can serve: the feed is connected, Redis takes writes, the saved
    subscriptions are restored."""

    status: Literal["ready"] = Field(description="Always `ready`.", examples=["ready"])
