"""Request and response bodies of the HTTP API (field names are the spec's)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Annotated, Final, Literal

from pydantic import BaseModel, Field, field_validator

from libs.market_data import InvalidSymbolError, PriceData, normalize_symbols
from libs.market_data.subscriptions.positions import PositionBasedSubscription
from libs.market_data.symbols import TICKER_PATTERN_ANY_CASE

__all__ = [
    "MAX_SYMBOLS_PER_REQUEST",
    "SYMBOL_PATTERN",
    "CacheHealth",
    "HealthResponse",
    "PositionPnLItem",
    "PositionSyncHealth",
    "PriceResponse",
    "PricesResponse",
    "RealtimePnLResponse",
    "RealtimePnLTotals",
    "SubscribeRequest",
    "SubscribeResponse",
    "SubscriptionsResponse",
    "UnsubscribeResponse",
]

MAX_SYMBOLS_PER_REQUEST: Final = 100
# What normalize_symbol accepts, for the OpenAPI document (and so for its fuzzer): a
# ticker in either case (the rule of libs.market_data.symbols), surrounded by the ASCII
# whitespace str.strip() removes. The runtime check stays normalize_symbol's, with its
# clearer messages; a test holds the two together.
_BLANK = r"[\t-\r\x1c-\x20]*"
SYMBOL_PATTERN: Final = rf"^{_BLANK}{TICKER_PATTERN_ANY_CASE}{_BLANK}$"
Symbol = Annotated[str, Field(json_schema_extra={"pattern": SYMBOL_PATTERN})]


class SubscribeRequest(BaseModel):
    symbols: Annotated[list[Symbol], Field(min_length=1, max_length=MAX_SYMBOLS_PER_REQUEST)]

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


class CacheHealth(BaseModel):
    """The price cache seen from Redis: reachable, how fast, how fresh per subscription."""

    redis_reachable: bool
    redis_ping_ms: float | None = None
    # Subscribed symbols by the state of their price:{SYM} entry: cached with an exchange
    # time within stale_after_seconds, cached but older, or absent (TTL ran out or never
    # quoted).
    fresh_symbols: int = 0
    stale_symbols: int = 0
    missing_symbols: int = 0
    oldest_age_seconds: float | None = None  # among the cached ones, from exchange time
    stale_after_seconds: float
    error: str | None = None


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
    cache: CacheHealth | None = None  # the price cache as Redis holds it (cache_health.py)
    position_sync: PositionSyncHealth | None = None  # subscriptions following positions


class PriceResponse(PriceData):
    """A cached price and how old it is (from its exchange timestamp)."""

    age_seconds: float | None  # null only if the exchange timestamp cannot be read


class PricesResponse(BaseModel):
    prices: dict[str, PriceResponse]  # the found ones, in the order asked
    missing: list[str]  # asked for, but no fresh price cached


# -- positions (docs/positions.md) -----------------------------------------------------------
# The HTTP shapes of the library's records (PositionSyncStatus, PositionPnL, PnLTotals,
# RealtimePnL), filled from them by attribute name: the field lists here are the API
# contract and its OpenAPI document, and test_positions_api.py holds them to the records.


class PositionSyncHealth(BaseModel):
    """The sync of subscriptions to open positions; times are epoch seconds."""

    enabled: bool
    running: bool = False
    interval_seconds: float | None = None
    syncs: int = 0  # successful ones
    failures: int = 0
    consecutive_failures: int = 0  # > 0: the last sync failed and /health is degraded
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    symbols: list[str] = []  # symbols with an open position, as last read

    @classmethod
    def of(cls, sync: PositionBasedSubscription | None) -> PositionSyncHealth:
        if sync is None:
            return cls(enabled=False)
        return cls.model_validate({"enabled": True, **dataclasses.asdict(sync.status())})


class PositionPnLItem(BaseModel):
    """One position priced now. Decimals travel as exact strings; ``qty``, ``cost_basis``
    and ``market_value`` are negative for a short."""

    symbol: str
    side: Literal["long", "short"]
    qty: Decimal
    avg_entry_price: Decimal
    current_price: Decimal | None
    price_source: Literal["realtime", "closing", "unavailable"]
    price_timestamp: str | None  # quote time (realtime) or previous daily bar start (closing)
    price_age_seconds: float | None  # realtime only
    cost_basis: Decimal
    market_value: Decimal | None
    unrealized_pl: Decimal | None
    unrealized_pl_pct: Decimal | None  # percent of |cost_basis|


class RealtimePnLTotals(BaseModel):
    """Sums over the priced positions (the unavailable ones are left out)."""

    positions: int
    priced_positions: int
    total_cost_basis: Decimal
    total_market_value: Decimal
    total_unrealized_pl: Decimal
    total_unrealized_pl_pct: Decimal | None  # percent of the gross sum of |cost_basis|


class RealtimePnLResponse(BaseModel):
    positions: list[PositionPnLItem]
    totals: RealtimePnLTotals
    as_of: str  # RFC 3339 UTC, when the positions were read
    # Set when a fallback source failed (the affected positions show "unavailable").
    cache_error: str | None = None
    closing_prices_error: str | None = None
