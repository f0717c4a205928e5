"""Request and response bodies of the HTTP API (field names are the spec's)."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, Field, field_validator

from libs.market_data import InvalidSymbolError, normalize_symbols

__all__ = [
    "MAX_SYMBOLS_PER_REQUEST",
    "HealthResponse",
    "SubscribeRequest",
    "SubscribeResponse",
    "SubscriptionsResponse",
    "UnsubscribeResponse",
]

MAX_SYMBOLS_PER_REQUEST: Final = 100


class SubscribeRequest(BaseModel):
    symbols: Annotated[list[str], Field(min_length=1, max_length=MAX_SYMBOLS_PER_REQUEST)]

    @field_validator("symbols")
    @classmethod
    def _tickers(cls, value: list[str]) -> list[str]:
        try:
            return normalize_symbols(value)
        except InvalidSymbolError as exc:
            raise ValueError(str(exc)) from None


class SubscribeResponse(BaseModel):
    message: str
    subscribed_symbols: list[str]
    total_subscriptions: int


class UnsubscribeResponse(BaseModel):
    message: str
    remaining_subscriptions: int


class SubscriptionsResponse(BaseModel):
    symbols: list[str]
    count: int
    sources: dict[str, list[str]] = {}  # symbol -> who wants it: "manual", "positions"


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    service: str
    websocket_connected: bool
    subscribed_symbols: int
    reconnect_attempts: int
    max_reconnect_attempts: int
    state: str
    reason: str | None = None
    redis_connected: bool
    stats: dict[str, object]
    # Seconds since each subscribed symbol's last accepted quote (null: none yet). A quiet
    # symbol is not unhealthy by itself; only a silent feed is (the stall timeout).
    last_update_age_seconds: dict[str, float | None] = {}
