"""Request and response bodies of the HTTP API (field names are the spec's).

Every field carries a description (and an example where one helps): they are the
reference at ``/docs``. Decimals travel as JSON strings holding the exact decimal
(:data:`DecimalString`); error bodies are :mod:`~apps.market_data_service.api.errors`'s.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from apps.market_data_service.api.errors import symbol_message
from libs.market_data import ConnectionState, InvalidSymbolError, PriceData, normalize_symbol
from libs.market_data.subscriptions.positions import PositionBasedSubscription
from libs.market_data.symbols import MAX_SYMBOL_LENGTH, TICKER_PATTERN_ANY_CASE

__all__ = [
    "DECIMAL_PATTERN",
    "MAX_SYMBOLS_PER_REQUEST",
    "SYMBOL_PATTERN",
    "CacheHealth",
    "DecimalString",
    "HealthResponse",
    "HealthStats",
    "LiveResponse",
    "PositionPnLItem",
    "PositionSyncHealth",
    "PriceResponse",
    "PricesResponse",
    "ReadyResponse",
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

# str(Decimal) of a finite decimal: what every decimal of these bodies is sent as. An
# exponent appears for very small or very large values (Decimal("5E-8")).
DECIMAL_PATTERN: Final = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
DecimalString = Annotated[
    Decimal, WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["150.15"]})
]


def _ticker(value: object) -> str:
    try:
        return normalize_symbol(value)
    except InvalidSymbolError as exc:
        # A custom error type, so the problem body says invalid_symbol, with this message
        # (passed as context: a symbol may hold braces).
        raise PydanticCustomError(
            "invalid_symbol", "{message}", {"message": symbol_message(exc)}
        ) from None


Symbol = Annotated[
    str,
    BeforeValidator(_ticker),
    Field(
        description=(
            f"A ticker: letters, digits, '.' and '/', at most {MAX_SYMBOL_LENGTH} characters; "
            "upper-cased, surrounding blanks ignored."
        ),
        examples=["AAPL"],
        json_schema_extra={"pattern": SYMBOL_PATTERN},
    ),
]


class SubscribeRequest(BaseModel):
    """Symbols to subscribe by hand. Unknown fields are refused."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"symbols": ["AAPL", "msft", "BRK.B"]}]},
    )

    symbols: Annotated[
        list[Symbol],
        Field(
            min_length=1,
            max_length=MAX_SYMBOLS_PER_REQUEST,
            description=(
                f"1 to {MAX_SYMBOLS_PER_REQUEST} tickers; upper-cased, duplicates dropped "
                "(first seen order kept)."
            ),
            examples=[["AAPL", "MSFT", "GOOGL"]],
        ),
    ]

    @field_validator("symbols")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class SubscribeResponse(BaseModel):
    """The subscribe went through: the broker confirmed every symbol."""

    message: str = Field(
        description="A sentence for a person.", examples=["Successfully subscribed to 3 symbols"]
    )
    subscribed_symbols: list[str] = Field(
        description="The symbols of the request, normalised, in the order given.",
        examples=[["AAPL", "MSFT", "GOOGL"]],
    )
    total_subscriptions: int = Field(
        description="Symbols subscribed now, from every source.", examples=[3]
    )


class UnsubscribeResponse(BaseModel):
    """The hand subscription was released. ``still_held_by`` is there only when other
    sources keep the symbol subscribed."""

    message: str = Field(
        description="What happened, for a person.",
        examples=[
            "Successfully unsubscribed from AAPL",
            "Released AAPL (manual); still subscribed: held by positions",
        ],
    )
    remaining_subscriptions: int = Field(
        description="Symbols subscribed now, from every source.", examples=[2]
    )
    still_held_by: list[str] | None = Field(
        default=None,
        description=(
            "Only when the symbol stays subscribed: the sources that still hold it "
            "(`positions`). Absent when it left the broker."
        ),
        examples=[["positions"]],
    )


class SubscriptionsResponse(BaseModel):
    """Every subscribed symbol and why it is subscribed."""

    symbols: list[str] = Field(
        description="Subscribed symbols, sorted.", examples=[["AAPL", "MSFT"]]
    )
    count: int = Field(description="How many symbols are subscribed.", examples=[2])
    sources: dict[str, list[str]] = Field(
        default={},
        description=(
            "Symbol -> the sources holding it: `manual` (this API) and `positions` (an open "
            "position). A symbol leaves the broker when no source holds it."
        ),
        examples=[{"AAPL": ["manual"], "MSFT": ["manual", "positions"]}],
    )


# -- health ------------------------------------------------------------------------------------


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
    position_sync: PositionSyncHealth | None = Field(
        default=None, description="The subscriptions that follow open positions."
    )


class LiveResponse(BaseModel):
    """The process serves HTTP."""

    status: Literal["alive"] = Field(description="Always `alive`.", examples=["alive"])


class ReadyResponse(BaseModel):
    """The service can serve: the feed is connected, Redis takes writes, the saved
    subscriptions are restored."""

    status: Literal["ready"] = Field(description="Always `ready`.", examples=["ready"])


# -- prices ------------------------------------------------------------------------------------


class PriceResponse(PriceData):
    """A cached price (``price:{SYMBOL}``) and how old it is (from its exchange timestamp)."""

    symbol: str = Field(description="The ticker.", examples=["AAPL"])
    bid: DecimalString = Field(description="Best bid, the exact decimal.", examples=["150.10"])
    ask: DecimalString = Field(description="Best ask, the exact decimal.", examples=["150.20"])
    mid: DecimalString = Field(description="(bid + ask) / 2, exact.", examples=["150.15"])
    bid_size: int = Field(description="Bid size as the feed sends it (round lots).", examples=[1])
    ask_size: int = Field(description="Ask size as the feed sends it (round lots).", examples=[2])
    timestamp: str = Field(
        description="The exchange timestamp, RFC 3339 UTC, the feed's precision.",
        examples=["2024-07-24T07:56:53.639713735Z"],
    )
    exchange: str | None = Field(
        default=None, description="The bid's exchange code.", examples=["Q"]
    )
    bid_exchange: str | None = Field(
        default=None, description="The bid's exchange code.", examples=["Q"]
    )
    ask_exchange: str | None = Field(
        default=None, description="The ask's exchange code.", examples=["P"]
    )
    seq: int = Field(
        default=0,
        description=(
            "The seq of the newest `price.updated` event of the symbol, within `epoch`; "
            "0: not sequenced."
        ),
        examples=[42],
    )
    epoch: str = Field(
        default="",
        description="The numbering `seq` counts in, new at each service start; empty: none.",
        examples=["20240724T075001.123456Z-3f9a0c11d2e4"],
    )
    age_seconds: float | None = Field(
        description="Seconds since the exchange timestamp; null if it cannot be read.",
        examples=[0.42],
    )


class PricesResponse(BaseModel):
    """The cached prices of the symbols asked for, in one Redis round trip."""

    prices: dict[str, PriceResponse] = Field(
        description="Symbol -> its cached price, for those found, in the order asked."
    )
    missing: list[str] = Field(
        description="Symbols asked for with no fresh price cached.", examples=[["TSLA"]]
    )


# -- positions (docs/positions.md) -----------------------------------------------------------
# The HTTP shapes of the library's records (PositionSyncStatus, PositionPnL, PnLTotals,
# RealtimePnL), filled from them by attribute name: the field lists here are the API
# contract and its OpenAPI document, and test_positions_api.py holds them to the records.


class PositionPnLItem(BaseModel):
    """One position priced now. Decimals travel as exact strings; ``qty``, ``cost_basis``
    and ``market_value`` are negative for a short."""

    symbol: str = Field(description="The ticker.", examples=["AAPL"])
    side: Literal["long", "short"] = Field(description="Long or short.", examples=["long"])
    qty: DecimalString = Field(description="Quantity, negative for a short.", examples=["10"])
    avg_entry_price: DecimalString = Field(description="Average entry price.", examples=["187.50"])
    current_price: DecimalString | None = Field(
        description="The price used: cached mid (realtime) or previous close (closing).",
        examples=["190.25"],
    )
    price_source: Literal["realtime", "closing", "unavailable"] = Field(
        description="Where current_price comes from.", examples=["realtime"]
    )
    price_timestamp: str | None = Field(
        description="The quote's time (realtime) or the previous daily bar's start (closing).",
        examples=["2024-07-24T07:56:53.639713735Z"],
    )
    price_age_seconds: float | None = Field(
        description="Age of a realtime price in seconds; null otherwise.", examples=[0.42]
    )
    cost_basis: DecimalString = Field(
        description="qty x avg_entry_price, to the cent.", examples=["1875.00"]
    )
    market_value: DecimalString | None = Field(
        description="qty x current_price, to the cent.", examples=["1902.50"]
    )
    unrealized_pl: DecimalString | None = Field(
        description="market_value - cost_basis (a short earns when the price falls).",
        examples=["27.50"],
    )
    unrealized_pl_pct: DecimalString | None = Field(
        description="unrealized_pl as a percent of |cost_basis|, 4 places.", examples=["1.4667"]
    )


class RealtimePnLTotals(BaseModel):
    """Sums over the priced positions (the unavailable ones are left out)."""

    positions: int = Field(description="Open positions.", examples=[2])
    priced_positions: int = Field(description="Positions with a price.", examples=[2])
    total_cost_basis: DecimalString = Field(
        description="Sum of cost_basis, to the cent.", examples=["3375.00"]
    )
    total_market_value: DecimalString = Field(
        description="Sum of market_value, to the cent.", examples=["3402.50"]
    )
    total_unrealized_pl: DecimalString = Field(
        description="Sum of unrealized_pl, to the cent.", examples=["27.50"]
    )
    total_unrealized_pl_pct: DecimalString | None = Field(
        description="total_unrealized_pl as a percent of the gross sum of |cost_basis|.",
        examples=["0.8148"],
    )


class RealtimePnLResponse(BaseModel):
    """Open positions priced from the cache, and their totals."""

    positions: list[PositionPnLItem] = Field(description="Each open position, priced.")
    totals: RealtimePnLTotals = Field(description="Sums over the priced positions.")
    as_of: str = Field(
        description="When the positions were read, RFC 3339 UTC.",
        examples=["2024-07-24T07:57:00.123Z"],
    )
    cache_error: str | None = Field(
        default=None,
        description="Set when reading cached prices failed (those positions fall back).",
    )
    closing_prices_error: str | None = Field(
        default=None,
        description="Set when reading previous closes failed (those show `unavailable`).",
    )
