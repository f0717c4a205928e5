"""Alpaca's market-data messages as typed structs: quotes, trades, bars; stocks and crypto.

Numbers are :class:`~decimal.Decimal` straight from the frame's text. Stock sizes are
integers (round lots or shares), crypto sizes fractional decimals in the base asset:
the crypto structs differ from the stock ones only there, and in the fields the crypto
feed does not send (exchange, conditions, tape) or sends alone (``tks``, the taker
side). Unknown keys are ignored (docs/concepts/websocket-streaming.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

__all__ = [
    "Bar",
    "CryptoBar",
    "CryptoQuote",
    "CryptoTrade",
    "CryptoUpdatedBar",
    "Quote",
    "Size",
    "Timestamp",
    "Trade",
    "UpdatedBar",
]

# RFC 3339 text, kept as sent (nanoseconds). Its length is checked here in C; the
# separators by the processor (a regex here would cost 40% of the whole decode).
Timestamp = Annotated[str, msgspec.Meta(min_length=20, max_length=35)]
# Sizes are int64 on every consumer we know of; bigger is corruption, not a big order.
Size = Annotated[int, msgspec.Meta(le=2**63 - 1)]
# Trade ids: Alpaca's are int64 (crypto ones exceed 2**53); kept exact, never a float.
TradeId = int


class Quote(msgspec.Struct, tag_field="T", tag="q", frozen=True, gc=False):
    """A stock quote (``T`` = ``q``). Unknown keys (``c``, ``z``, ``r``) are ignored."""

    S: str
    bp: Decimal
    bs: Size
    ap: Decimal
    t: Timestamp
    as_: Size = msgspec.field(name="as")
    bx: str | None = None
    ax: str | None = None


class CryptoQuote(msgspec.Struct, tag_field="T", tag="q", frozen=True, gc=False):
    """A crypto quote: fractional sizes, no exchange codes."""

    S: str
    bp: Decimal
    bs: Decimal
    ap: Decimal
    t: Timestamp
    as_: Decimal = msgspec.field(name="as")
    bx: str | None = None
    ax: str | None = None


class Trade(msgspec.Struct, tag_field="T", tag="t", frozen=True, gc=False):
    """A stock trade (``T`` = ``t``)."""

    S: str
    p: Decimal
    s: Size
    t: Timestamp
    i: TradeId = 0
    x: str | None = None
    c: list[str] | None = None
    z: str | None = None
    tks: str | None = None


class CryptoTrade(msgspec.Struct, tag_field="T", tag="t", frozen=True, gc=False):
    """A crypto trade: fractional size, the taker side ``tks`` (B/S)."""

    S: str
    p: Decimal
    s: Decimal
    t: Timestamp
    i: TradeId = 0
    x: str | None = None
    c: list[str] | None = None
    z: str | None = None
    tks: str | None = None


class Bar(msgspec.Struct, tag_field="T", tag="b", frozen=True, gc=False):
    """A minute bar (``T`` = ``b``); ``t`` is the minute's start."""

    S: str
    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 (Alpaca's key)
    c: Decimal
    v: Size
    t: Timestamp
    n: Size = 0
    vw: Decimal | None = None


class UpdatedBar(Bar, tag="u", frozen=True, gc=False):
    """A correction of an earlier minute's bar (``updatedBars``): replaces that minute."""


class CryptoBar(msgspec.Struct, tag_field="T", tag="b", frozen=True, gc=False):
    """A crypto minute bar: fractional volume."""

    S: str
    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 (Alpaca's key)
    c: Decimal
    v: Decimal
    t: Timestamp
    n: Size = 0
    vw: Decimal | None = None


class CryptoUpdatedBar(CryptoBar, tag="u", frozen=True, gc=False):
    """A correction of an earlier minute's crypto bar."""
