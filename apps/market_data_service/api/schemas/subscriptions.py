"""Bodies of subscribe, unsubscribe and the subscription list (the spec's fields)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from apps.market_data_service.api.schemas.common import (
    MAX_SYMBOLS_PER_REQUEST,
    SubscribableSymbol,
)

ChannelName = Literal["quotes", "trades", "bars"]

__all__ = ["SubscribeRequest", "SubscribeResponse", "SubscriptionsResponse", "UnsubscribeResponse"]


class SubscribeRequest(BaseModel):
    """Symbols to subscribe by hand. Unknown fields are refused."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"symbols": ["AAPL", "msft", "BRK.B"]},
                {"symbols": ["AAPL", "BTC/USD"], "channels": ["quotes", "trades"]},
                {"symbols": ["*"]},
            ]
        },
    )

    symbols: Annotated[
        list[SubscribableSymbol],
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

    channels: Annotated[
        list[ChannelName],
        Field(
            min_length=1,
            max_length=3,
            description=(
                "What to keep for each symbol: `quotes` (the default: `price:{SYM}`), "
                "`trades` (`trade:{SYM}`), `bars` (`bar:{SYM}`, minute bars with their "
                "corrections)."
            ),
            examples=[["quotes", "trades"]],
        ),
    ] = ["quotes"]

    @field_validator("symbols", "channels")
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
    channels: list[str] | None = Field(
        default=None,
        description="The channels subscribed; absent for the default, `quotes` alone.",
        examples=[["quotes", "trades"]],
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
    channels: dict[str, list[str]] | None = Field(
        default=None,
        description=(
            "Symbol -> its channels (`quotes`, `trades`, `bars`); absent while every "
            "subscription is a named symbol's quotes (the spec's body). `*` stands for "
            "every symbol of the stock feed on those channels."
        ),
        examples=[{"*": ["quotes"], "AAPL": ["quotes", "trades"]}],
    )
