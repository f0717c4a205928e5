"""The spec's models: ``QuoteData`` (a validated quote), ``PriceData`` (what ``price:{SYM}``
holds) and ``PriceUpdateEvent`` (what ``price.updated.{SYM}`` carries).

Prices are :class:`~decimal.Decimal` end to end and serialise as JSON strings holding the
exact decimal. Floats are refused: a binary float cannot hold most decimal prices.

The validation rules live in :func:`check_quote` so the high-throughput path in
:mod:`libs.market_data.pipeline.processor` and these models apply exactly the same ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from libs.market_data.exceptions import QuoteValidationError

__all__ = [
    "MAX_PRICE",
    "PriceData",
    "PriceUpdateEvent",
    "QuoteData",
    "RejectReason",
    "check_quote",
    "format_timestamp",
]

_TWO = Decimal(2)
# No instrument is quoted anywhere near a billion per unit: such a price is corruption.
MAX_PRICE = Decimal(10**9)
_BPS = Decimal(10_000)


class RejectReason(StrEnum):
    """Why a quote was dropped. Values are stable: they label stats and metrics."""

    NEGATIVE_PRICE = "negative_price"
    NEGATIVE_SIZE = "negative_size"
    CROSSED = "crossed"
    MALFORMED = "malformed"
    UNSUBSCRIBED = "unsubscribed"
    STALE = "stale"  # older than the symbol's last accepted quote (docs/architecture.md)
    # A bar whose high is below its low, or whose open or close lies outside them.
    OUT_OF_RANGE = "out_of_range"


def check_quote(
    bid: Decimal, ask: Decimal, bid_size: int | Decimal, ask_size: int | Decimal
) -> RejectReason | None:
    """Return why a quote is invalid, or ``None`` if it is valid.

    A locked market (``ask == bid``) is valid; a crossed one (``ask < bid``) is not.
    NaN, infinities and prices of :data:`MAX_PRICE` or more count as malformed.
    """
    try:
        if bid < 0 or ask < 0:  # -Infinity lands here
            return RejectReason.NEGATIVE_PRICE
        if ask < bid:
            return RejectReason.CROSSED
        if ask >= MAX_PRICE:  # bid <= ask, so this bounds both; +Infinity lands here
            return RejectReason.MALFORMED
    except InvalidOperation:  # any comparison with NaN (the default context traps it)
        return RejectReason.MALFORMED
    if bid_size < 0 or ask_size < 0:
        return RejectReason.NEGATIVE_SIZE
    return None


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, the form Alpaca sends."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _refuse_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("pass prices as Decimal or str, not float (binary floats are inexact)")
    return value


class QuoteData(BaseModel):
    """A real-time quote, validated: no negative prices or sizes, no crossed market."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    bid_price: Decimal
    ask_price: Decimal
    bid_size: int
    ask_size: int
    timestamp: datetime
    # The bid's exchange code; both sides are kept below when the feed sends them.
    exchange: str | None = None
    bid_exchange: str | None = None
    ask_exchange: str | None = None

    _no_float = field_validator("bid_price", "ask_price", mode="before")(_refuse_float)

    @model_validator(mode="after")
    def _check(self) -> Self:
        reason = check_quote(self.bid_price, self.ask_price, self.bid_size, self.ask_size)
        # A ValueError subclass: pydantic reports it in its ValidationError, where
        # ``errors()[i]["ctx"]["error"]`` is this exception with its machine-readable reason.
        if reason is RejectReason.CROSSED:
            raise QuoteValidationError(
                reason.value, f"Crossed market: ask {self.ask_price} < bid {self.bid_price}"
            )
        if reason is not None:
            raise QuoteValidationError(
                reason.value,
                f"{reason.value.replace('_', ' ')}: bid {self.bid_price} x {self.bid_size}, "
                f"ask {self.ask_price} x {self.ask_size}",
            )
        return self

    @property
    def mid_price(self) -> Decimal:
        """``(bid + ask) / 2``, exact."""
        return (self.bid_price + self.ask_price) / _TWO

    @property
    def spread(self) -> Decimal:
        """``ask - bid`` in price units."""
        return self.ask_price - self.bid_price

    @property
    def spread_bps(self) -> Decimal:
        """Spread relative to the mid price, in basis points (0 when the mid is 0)."""
        mid = self.mid_price
        if mid == 0:
            return Decimal(0)
        return self.spread / mid * _BPS


class PriceData(BaseModel):
    """The latest price of a symbol as cached in Redis under ``price:{SYMBOL}``."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    bid: Decimal
    ask: Decimal
    mid: Decimal
    # Stocks: an integer. Crypto pairs: the exact fractional size in the base asset,
    # serialised as a decimal string ("0.27994"), never rounded (README, "Crypto").
    bid_size: int | Decimal
    ask_size: int | Decimal
    timestamp: str  # RFC 3339, the exchange's precision
    exchange: str | None = None
    bid_exchange: str | None = None
    ask_exchange: str | None = None
    # The seq of the newest price.updated event published for this symbol, and the
    # epoch it counts in (README, "What lands in Redis"). 0 / "": not sequenced (a record
    # written by an earlier version, or by a tool outside the stream).
    seq: int = 0
    epoch: str = ""

    @classmethod
    def from_quote(cls, quote: QuoteData, *, seq: int = 0, epoch: str = "") -> PriceData:
        """Build the cached form of a validated quote."""
        return cls(
            symbol=quote.symbol,
            bid=quote.bid_price,
            ask=quote.ask_price,
            mid=quote.mid_price,
            bid_size=quote.bid_size,
            ask_size=quote.ask_size,
            timestamp=format_timestamp(quote.timestamp),
            exchange=quote.exchange,
            bid_exchange=quote.bid_exchange,
            ask_exchange=quote.ask_exchange,
            seq=seq,
            epoch=epoch,
        )


class PriceUpdateEvent(BaseModel):
    """Published on ``price.updated.{SYMBOL}`` after the cache holds the new price.

    The spec's fields (``event_type``, ``symbol``, ``price``, ``timestamp``) keep their
    names and meaning; the quote's sides, ``seq`` and ``epoch`` come beside them.
    ``seq`` goes up by one per event of the symbol within an ``epoch``: a consumer drops
    an event whose ``seq`` it has seen (a rewrite after a Redis fault republishes the
    same JSON) and treats a jump, or a new ``epoch``, as a gap.
    """

    model_config = ConfigDict(frozen=True)

    event_type: Literal["price.updated"] = "price.updated"
    symbol: str
    price: Decimal  # mid price
    bid: Decimal
    ask: Decimal
    bid_size: int | Decimal  # as in PriceData
    ask_size: int | Decimal
    seq: int = 0  # 0 / "": not sequenced (see PriceData)
    epoch: str = ""
    # Last on purpose: the stream's latency sampler slices it off the end of the JSON.
    timestamp: str  # RFC 3339, the exchange's precision

    @classmethod
    def from_quote(cls, quote: QuoteData, *, seq: int = 0, epoch: str = "") -> PriceUpdateEvent:
        """Build the event announcing a validated quote's mid price."""
        return cls(
            symbol=quote.symbol,
            price=quote.mid_price,
            bid=quote.bid_price,
            ask=quote.ask_price,
            bid_size=quote.bid_size,
            ask_size=quote.ask_size,
            seq=seq,
            epoch=epoch,
            timestamp=format_timestamp(quote.timestamp),
        )
