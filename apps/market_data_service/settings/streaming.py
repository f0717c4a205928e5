"""The data path's tunables: cache TTL, Redis writes, reconnects, stalls, positions, gap fill.

Defaults come from libs/market_data/defaults.py, which the library's signatures share.
Whether the position sync and the gap fill run when unset depends on the broker
settings too: ``config.Settings.position_sync_on`` and ``gap_fill_on`` decide.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, Field, model_validator

from libs.market_data import defaults

__all__ = ["StreamingSettings"]


class StreamingSettings(BaseModel):
    """How the service streams quotes into the cache and keeps it whole."""

    # Market data
    price_cache_ttl: Annotated[int, Field(gt=0)] = defaults.PRICE_CACHE_TTL
    # Longest the broker reader waits on Redis; past it the newest price per symbol is
    # held and written once Redis answers again (docs/architecture.md, "Redis faults").
    redis_write_timeout: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = (
        defaults.REDIS_WRITE_TIMEOUT
    )
    # How often the saved subscription set is checked against the wanted one and
    # rewritten if Redis lost or changed it.
    subscription_check_interval: Annotated[float, Field(gt=0, allow_inf_nan=False)] = (
        defaults.SUBSCRIPTION_CHECK_INTERVAL
    )

    # WebSocket
    max_reconnect_attempts: Annotated[int, Field(ge=1)] = defaults.MAX_RECONNECT_ATTEMPTS
    # Finite: "inf" parses as a float and would mean "never reconnect" without a word.
    reconnect_base_delay: Annotated[float, Field(gt=0, allow_inf_nan=False)] = (
        defaults.RECONNECT_BASE_DELAY
    )
    reconnect_max_delay: Annotated[float, Field(gt=0, allow_inf_nan=False)] = (
        defaults.RECONNECT_MAX_DELAY
    )

    # Positions (docs/positions.md): subscriptions that follow them, real-time P&L.
    # Unset: on when the stream is Alpaca's own (no ALPACA_DATA_URL) or ALPACA_BASE_URL is
    # set, so keys meant for another feed (the simulator) never go to Alpaca's trading API.
    position_sync_enabled: bool | None = None
    position_sync_interval: Annotated[float, Field(gt=0, allow_inf_nan=False)] = (
        defaults.POSITION_SYNC_INTERVAL
    )
    alpaca_rest_timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] = defaults.REST_TIMEOUT
    # No market data at all for this long while subscribed = a stalled feed: reconnect.
    # Doubles while fresh connections stay silent too (closed market), up to an hour;
    # 0 turns the data clock off. Per connection, so a quiet symbol never triggers it.
    stall_timeout: Annotated[float, Field(ge=0, allow_inf_nan=False)] = defaults.STALL_TIMEOUT
    # Gap fill (docs/architecture.md, "Gap fill"): after a reconnect, a Redis recovery or
    # a new subscription, read the latest quotes over REST. Unset: on when the stream is
    # Alpaca's own or ALPACA_DATA_BASE_URL is set (as POSITION_SYNC_ENABLED decides).
    gap_fill: bool | None = None
    gap_fill_timeout: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = (
        defaults.GAP_FILL_TIMEOUT
    )
    gap_fill_max_calls: Annotated[int, Field(ge=1, le=100)] = defaults.GAP_FILL_MAX_CALLS

    @model_validator(mode="after")
    def _delays(self) -> Self:
        if self.reconnect_max_delay < self.reconnect_base_delay:
            raise ValueError("RECONNECT_MAX_DELAY must be >= RECONNECT_BASE_DELAY")
        return self
