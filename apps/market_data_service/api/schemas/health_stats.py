"""The stream's counters in ``/health`` (``stats``): connection, validation, Redis writer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from libs.market_data import ConnectionState

__all__ = ["HealthStats"]


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
