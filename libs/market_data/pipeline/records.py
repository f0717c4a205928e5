"""What the processor hands on: the cache record and event of each accepted quote.

The structs' JSON is byte-for-byte what ``PriceData`` and ``PriceUpdateEvent`` produce (a
test holds them together), and the native quote path writes the same bytes
(docs/architecture.md, "Native quote path").
"""

from __future__ import annotations

import secrets
import time
from decimal import Decimal

import msgspec

__all__ = ["EventRecord", "PriceRecord", "PriceUpdate", "new_epoch"]


class PriceRecord(msgspec.Struct, frozen=True, gc=False):
    """Mirror of ``PriceData``: same fields, same order, same JSON."""

    symbol: str
    # msgspec writes a Decimal as its str() in a JSON string, as pydantic does: the
    # encoder formats it in C, with no str() call per field here.
    bid: Decimal
    ask: Decimal
    mid: Decimal
    # An int for stocks; for crypto the exact fractional Decimal (written "0.27994").
    bid_size: int | Decimal
    ask_size: int | Decimal
    timestamp: str
    exchange: str | None
    bid_exchange: str | None
    ask_exchange: str | None
    seq: int
    epoch: str


class EventRecord(msgspec.Struct, frozen=True, gc=False):
    """Mirror of ``PriceUpdateEvent``."""

    event_type: str
    symbol: str
    price: Decimal  # as in PriceRecord
    bid: Decimal
    ask: Decimal
    bid_size: int | Decimal
    ask_size: int | Decimal
    seq: int
    epoch: str
    timestamp: str


def new_epoch() -> str:
    """A fresh epoch id: UTC start time to the microsecond, then 48 random bits.

    Unique per start, and ids of starts on one clock sort as the starts do
    (``20260102T150000.123456Z-3f9a0c11d2e4``).
    """
    now = time.time_ns() // 1000
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000))
    return f"{stamp}.{now % 1_000_000:06d}Z-{secrets.token_hex(6)}"


# One accepted quote: (symbol, PriceData JSON, PriceUpdateEvent JSON). A plain tuple:
# a NamedTuple's constructor alone cost 20% of this module's time per quote.
PriceUpdate = tuple[str, bytes, bytes]
