"""The background jobs in ``/health``: the position sync and the gap fill.

Both keep the service whole beside the stream (the wanted symbols, the cached prices
after a gap), from the broker's REST API; each record is made from its job's status.
"""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, Field

from libs.market_data.gapfill import GapFiller
from libs.market_data.subscriptions.positions import PositionBasedSubscription

__all__ = ["GapFillHealth", "PositionSyncHealth"]


class PositionSyncHealth(BaseModel):
    """The sync of subscriptions to open positions; times are epoch seconds."""

    enabled: bool = Field(
        description="Subscriptions follow open positions (POSITION_SYNC_ENABLED)."
    )
    running: bool = Field(default=False, description="The sync task runs.")
    interval_seconds: float | None = Field(
        default=None, description="Seconds between position reads.", examples=[30]
    )
    syncs: int = Field(default=0, description="Successful syncs.", examples=[12])
    failures: int = Field(default=0, description="Failed syncs.", examples=[0])
    consecutive_failures: int = Field(
        default=0,
        description="Failures since the last success; > 0 makes /health degraded.",
        examples=[0],
    )
    last_attempt_at: float | None = Field(
        default=None, description="When the last sync started.", examples=[1721807900.0]
    )
    last_success_at: float | None = Field(
        default=None, description="When a sync last succeeded.", examples=[1721807900.0]
    )
    last_error: str | None = Field(
        default=None,
        description="Why the last sync failed, if it did.",
        examples=["GET /v2/positions: HTTP 503"],
    )
    symbols: list[str] = Field(
        default=[],
        description="Symbols with an open position, as last read.",
        examples=[["AAPL", "MSFT"]],
    )

    @classmethod
    def of(cls, sync: PositionBasedSubscription | None) -> PositionSyncHealth:
        if sync is None:
            return cls(enabled=False)
        return cls.model_validate({"enabled": True, **dataclasses.asdict(sync.status())})


class GapFillHealth(BaseModel):
    """The gap fill from REST latest quotes (docs/architecture.md, "Gap fill"); a skipped
    fill does not make the service degraded: streaming goes on, and the gap was
    announced. Times are epoch seconds."""

    enabled: bool = Field(description="Fills run (GAP_FILL).")
    running: bool = Field(default=False, description="A fill runs now.")
    fills: int = Field(default=0, description="Fills that read REST (partial included).")
    partial: int = Field(default=0, description="Fills cut short by REST or the deadline.")
    skipped: int = Field(default=0, description="Fills that read nothing.", examples=[0])
    skipped_by_reason: dict[str, int] = Field(
        default={},
        description=(
            "Skips by reason: `rest_unavailable`, `rest_rate_limited`, `rest_refused`, "
            "`cooling_down`, `rate_budget`, `deadline`, `cache_unreadable`, `error`."
        ),
        examples=[{"rest_unavailable": 1}],
    )
    symbols_refreshed: int = Field(default=0, description="Prices the fills wrote.")
    rest_calls: int = Field(default=0, description="REST requests the fills made.")
    last_result: str | None = Field(
        default=None, description="`filled`, `partial` or `skipped`.", examples=["filled"]
    )
    last_trigger: str | None = Field(
        default=None,
        description="What started the last fill: `stream.reconnected`, `redis.recovered`, "
        "`subscribe` (joined by `+` when coalesced).",
        examples=["stream.reconnected"],
    )
    last_at: float | None = Field(default=None, description="When the last fill started.")
    last_skipped_reason: str | None = Field(
        default=None, description="Why the last fill read nothing or stopped early."
    )
    last_detail: str | None = Field(default=None, description="The last failure's message.")
    last_refreshed: int = Field(default=0, description="Prices the last fill wrote.")

    @classmethod
    def of(cls, filler: GapFiller | None) -> GapFillHealth:
        if filler is None:
            return cls(enabled=False)
        status = filler.status()
        return cls(
            enabled=True,
            running=status.running,
            fills=status.fills,
            partial=status.partial,
            skipped=status.skipped,
            skipped_by_reason=status.skipped_by_reason,
            symbols_refreshed=status.symbols_refreshed,
            rest_calls=status.rest_calls,
            last_result=status.last_outcome,
            last_trigger=status.last_trigger,
            last_at=status.last_at,
            last_skipped_reason=status.last_reason,
            last_detail=status.last_detail,
            last_refreshed=status.last_refreshed,
        )
