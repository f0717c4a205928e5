"""Bodies of the latest-price reads."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    Field,
)

from apps.market_data_service.api.schemas.common import (
    DecimalString,
)
from libs.market_data import PriceData

__all__ = ["PriceResponse", "PricesResponse"]


class PriceResponse(PriceData):
    """A cached price (``price:{SYMBOL}``) and how old it is (from its exchange timestamp)."""

    symbol: str = Field(description="The ticker.", examples=["AAPL"])
    bid: DecimalString = Field(description="Best bid, the exact decimal.", examples=["150.10"])
    ask: DecimalString = Field(description="Best ask, the exact decimal.", examples=["150.20"])
    mid: DecimalString = Field(description="(bid + ask) / 2, exact.", examples=["150.15"])
    bid_size: int | DecimalString = Field(
        description="Bid size as the feed sends it: an integer for stocks (round lots), the "
        'exact fractional size as a decimal string for crypto pairs (`"0.27994"`).',
    )
    ask_size: int | DecimalString = Field(description="Ask size, as `bid_size`.")
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
