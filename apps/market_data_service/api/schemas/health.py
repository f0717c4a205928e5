"""Bodies of ``/health`` and the probes: state, reason, typed counters, cache health."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
)

from apps.market_data_service.api.schemas.leadership import LeadershipHealth
from libs.market_data import ConnectionState
from libs.market_data.gapfill import GapFiller
from libs.market_data.subscriptions.positions import PositionBasedSubscription

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


class CacheHealth(BaseModel):
    """The price cache seen from Redis: reachable, how fast, how fresh per subscription."""

    redis_reachable: bool = Field(description="Redis answered the probe's PING.")
    redis_ping_ms: float | None = Field(
        default=None, description="PING round trip in milliseconds.", examples=[0.21]
    )
    fresh_symbols: int = Field(
        default=0,
        description="Subscribed symbols cached with an exchange time within stale_after_seconds.",
        examples=[3],
    )
    stale_symbols: int = Field(
        default=0, description="Subscribed symbols cached, but older.", examples=[0]
    )
    missing_symbols: int = Field(
        default=0,
        description="Subscribed symbols with no cached price (TTL ran out, or never quoted).",
        examples=[0],
    )
    oldest_age_seconds: float | None = Field(
        default=None,
        description="Age of the oldest cached subscribed price, from its exchange time.",
        examples=[1.25],
    )
    stale_after_seconds: float = Field(
        description="The age past which a cached price counts as stale (PRICE_CACHE_TTL).",
        examples=[300],
    )
    error: str | None = Field(
        default=None, description="Why Redis could not be probed, if it could not."
    )


class HealthStats(BaseModel):
    """The stream's counters (``AlpacaMarketDataStream.get_connection_stats()``): the
    connection, validation, then the Redis writer. Times are epoch seconds."""

    state: str = Field(
        description="The connection's state.",
        examples=["connected"],
        json_schema_extra={"enum": [state.value for state in ConnectionState]},
    )
    connected: bool = Field(description="An authenticated socket is open.")
    url: str = Field(
        description="The broker WebSocket URL.",
        examples=["wss://stream.data.alpaca.markets/v2/iex"],
    )
    reconnect_attempts: int = Field(
        description="Consecutive failed attempts since the last good connection.", examples=[0]
    )
    max_reconnect_attempts: int = Field(
        description="Attempts before giving up (MAX_RECONNECT_ATTEMPTS).", examples=[10]
    )
    subscribed_symbols: int = Field(description="Symbols wanted at the broker.", examples=[3])
    confirmed_symbols: int = Field(
        description="Symbols the broker confirmed on this connection.", examples=[3]
    )
    connections_opened: int = Field(description="Connections opened since start.", examples=[1])
    frames_received: int = Field(description="WebSocket frames received.", examples=[1024])
    quotes_received: int = Field(
        description="Quotes received (accepted + rejected).", examples=[5000]
    )
    quotes_accepted: int = Field(description="Quotes that passed validation.", examples=[4998])
    quotes_rejected: dict[str, int] = Field(
        description=(
            "Dropped quotes by reason (`crossed`, `negative_price`, `negative_size`, "
            "`malformed`, `unsubscribed`, `stale`), reasons seen only."
        ),
        examples=[{"crossed": 2}],
    )
    malformed_messages: int = Field(
        description="Frames or messages that could not be decoded.", examples=[0]
    )
    other_messages: int = Field(
        description="Messages of kinds the service does not use (trades, bars ...).", examples=[0]
    )
    error_frames: int = Field(description="Error messages the broker sent.", examples=[0])
    stalls_detected: int = Field(
        description="Sockets replaced after STALL_TIMEOUT without market data.", examples=[0]
    )
    last_error: str | None = Field(
        description="The connection's last error, if any.",
        examples=["connection closed: 1006"],
    )
    connected_since: float | None = Field(
        description="When the current connection was established.", examples=[1721807813.6]
    )
    last_data_at: float | None = Field(
        description="When market data last arrived.", examples=[1721807900.1]
    )
    reconnect_causes: dict[str, int] = Field(
        description="Reconnects by cause (the metric's label), sorted by cause.",
        examples=[{"dropped": 1}],
    )
    redis_connected: bool = Field(description="The Redis writer's connection is up.")
    redis_state: str = Field(
        description="The writer's state: `up`, `refused`, `unresponsive`, `down`, `closed`.",
        examples=["up"],
    )
    quotes_written: int = Field(description="Prices Redis cached.", examples=[4998])
    quotes_deferred: int = Field(
        description="Prices held back while Redis was down, refusing or hung.", examples=[0]
    )
    quotes_refused: int = Field(description="Price writes Redis refused.", examples=[0])
    pending_symbols: int = Field(
        description="Symbols whose newest price waits to be rewritten.", examples=[0]
    )
    batches_in_flight: int = Field(description="Pipelined batches awaiting replies.", examples=[0])
    round_trips: int = Field(description="Batches Redis answered.", examples=[1024])
    last_round_trip_ms: float | None = Field(
        description="The last batch's Redis round trip in milliseconds.", examples=[0.4]
    )
    reply_errors: int = Field(description="Error replies Redis sent.", examples=[0])
    redis_outages: int = Field(description="Redis fault episodes since start.", examples=[0])
    notices_published: int = Field(
        description="Gap notices published on `market_data.status`.", examples=[1]
    )
    redis_last_error: str | None = Field(
        description="The writer's last Redis error, if any.", examples=[None]
    )
    trades_accepted: int = Field(default=0, description="Trades cached.", examples=[0])
    trades_rejected: dict[str, int] = Field(
        default={}, description="Dropped trades by reason.", examples=[{}]
    )
    bars_accepted: int = Field(default=0, description="Bars cached.", examples=[0])
    bars_rejected: dict[str, int] = Field(
        default={},
        description="Dropped bars by reason (`out_of_range`: high < low, open or close "
        "outside them).",
        examples=[{}],
    )
    crypto: dict[str, Any] | None = Field(
        default=None,
        description="The crypto feed's connection counters (null until a pair is wanted).",
    )


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


class QuoteAges(BaseModel):
    """Per-symbol quote state summed up: bounded whatever the symbol count (the wildcard)."""

    symbols_tracked: int = Field(
        description="Symbols with an accepted quote kept (named and the wildcard's).",
        examples=[3],
    )
    symbols_named: int = Field(description="Symbols subscribed by name.", examples=[3])
    wildcard: bool = Field(description="`*` (the whole stock market) is subscribed.")
    listed: bool = Field(
        description=(
            "`last_update_age_seconds` lists every named symbol; false when there are more "
            "than 1,000: then it holds the quiet ones and the stalest few only."
        )
    )
    stalest: dict[str, float] = Field(
        default={},
        description="The stalest symbols of all tracked (wildcard included), oldest first.",
        examples=[{"ZVZZT": 42.1}],
    )


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
    role: Literal["leader", "standby", "single"] = Field(
        default="single",
        description="`leader` or `standby` with LEADER_ELECTION=redis (docs/leadership.md); "
        "`single` without.",
        examples=["leader"],
    )
    leadership: LeadershipHealth | None = Field(
        default=None, description="The leader election, when on (LEADER_ELECTION=redis)."
    )


class LiveResponse(BaseModel):
    """The process serves HTTP."""

    status: Literal["alive"] = Field(description="Always `alive`.", examples=["alive"])


class ReadyResponse(BaseModel):
    """The service can serve: the feed is connected, Redis takes writes, the saved
    subscriptions are restored."""

    status: Literal["ready"] = Field(description="Always `ready`.", examples=["ready"])
