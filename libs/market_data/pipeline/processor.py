"""Quotes in, Redis-ready payloads out: validate with exact decimals, then encode.

This is the hot path. It applies the same rules as :class:`~libs.market_data.types.QuoteData`
(:func:`~libs.market_data.types.check_quote`) without building a pydantic model per quote,
and encodes with msgspec structs whose JSON is byte-for-byte what ``PriceData`` and
``PriceUpdateEvent`` produce (a test holds the two together).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Iterable
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Final

import msgspec

from libs.market_data.pipeline.stats import ProcessorStats
from libs.market_data.stream.protocol import Quote
from libs.market_data.types import RejectReason, check_quote
from libs.telemetry import instant_key

__all__ = ["EventRecord", "PriceRecord", "PriceUpdate", "QuoteProcessor"]

_TWO: Final = Decimal(2)
# The default 28 digits, with InvalidOperation trapped (check_quote relies on NaN
# comparisons raising) and Inexact too: a mid price that would need rounding (absurd
# precision, or an exponent so small it underflows to 0) is refused, never stored rounded.
_CONTEXT: Final = Context(traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


class PriceRecord(msgspec.Struct, frozen=True, gc=False):
    """Mirror of ``PriceData``: same fields, same order, same JSON."""

    symbol: str
    bid: Decimal
    ask: Decimal
    mid: Decimal
    bid_size: int
    ask_size: int
    timestamp: str
    exchange: str | None
    bid_exchange: str | None
    ask_exchange: str | None


class EventRecord(msgspec.Struct, frozen=True, gc=False):
    """Mirror of ``PriceUpdateEvent``."""

    event_type: str
    symbol: str
    price: Decimal
    timestamp: str


# One accepted quote: (symbol, PriceData JSON, PriceUpdateEvent JSON). A plain tuple:
# a NamedTuple's constructor alone cost 20% of this module's time per quote.
PriceUpdate = tuple[str, bytes, bytes]


class QuoteProcessor:
    """Validates quotes and encodes the accepted ones; counts what it drops and why."""

    __slots__ = ("_encode", "_instants", "accepted", "last_accepted", "rejected")

    def __init__(self) -> None:
        self._encode = msgspec.json.Encoder().encode
        self.accepted = 0
        self.rejected: Counter[RejectReason] = Counter()
        # symbol -> wall-clock time of its last accepted quote (bounded by subscriptions)
        self.last_accepted: dict[str, float] = {}
        # symbol -> instant_key() of its last accepted quote's exchange time: a quote
        # older than that is dropped (STALE); an equal one is accepted, the later
        # arrival being the later quote (docs/architecture.md, "Per-symbol order").
        self._instants: dict[str, str] = {}

    def snapshot(self) -> ProcessorStats:
        """The counters, typed: accepted, and rejected by reason (reasons seen only)."""
        rejected = {reason.value: count for reason, count in sorted(self.rejected.items())}
        return ProcessorStats(quotes_accepted=self.accepted, quotes_rejected=rejected)

    def ages(self, symbols: Iterable[str], now: float) -> dict[str, float | None]:
        """Seconds since each symbol's last accepted quote at ``now`` (None: none yet)."""
        last = self.last_accepted
        ages: dict[str, float | None] = {}
        for symbol in symbols:
            at = last.get(symbol)
            ages[symbol] = None if at is None else max(0.0, now - at)
        return ages

    def forget(self, symbols: Iterable[str]) -> None:
        """Drop what is kept of symbols no longer subscribed."""
        for symbol in symbols:
            self.last_accepted.pop(symbol, None)
            self._instants.pop(symbol, None)

    def process(self, quotes: Iterable[Quote], subscribed: Collection[str]) -> list[PriceUpdate]:
        """Return the updates for valid quotes of subscribed symbols, in arrival order."""
        # check_quote relies on NaN comparisons trapping, and mid on the default precision:
        # both hold in this context whatever the caller's thread has set.
        with localcontext(_CONTEXT):
            return self._process(quotes, subscribed)

    def _process(self, quotes: Iterable[Quote], subscribed: Collection[str]) -> list[PriceUpdate]:
        encode = self._encode
        last_accepted = self.last_accepted
        instants = self._instants
        now = time.time()
        updates: list[PriceUpdate] = []
        append = updates.append
        for q in quotes:
            symbol = q.S
            if symbol not in subscribed:
                # Alpaca drains its buffers for a while after an unsubscribe.
                self.rejected[RejectReason.UNSUBSCRIBED] += 1
                continue
            if q.t[4:17:3] != "--T::":  # YYYY-MM-DDTHH:MM:SS...
                self.rejected[RejectReason.MALFORMED] += 1
                continue
            bid = q.bp
            ask = q.ap
            reason = check_quote(bid, ask, q.bs, q.as_)
            if reason is not None:
                self.rejected[reason] += 1
                continue
            try:
                mid = (bid + ask) / _TWO
            except ArithmeticError:  # Inexact, Overflow: see _CONTEXT
                self.rejected[RejectReason.MALFORMED] += 1
                continue
            instant = q.t
            if len(instant) != 30 or instant[19] != "." or instant[29] != "Z":
                # Not already the fixed-width form that sorts as instants (see
                # instant_key); inline because this runs for every quote.
                try:
                    instant = instant_key(instant)
                except ValueError:
                    instant = ""  # unreadable past the shape check: cached, never ordered
            if instant:
                previous = instants.get(symbol)
                if previous is not None and instant < previous:
                    self.rejected[RejectReason.STALE] += 1
                    continue
            last_accepted[symbol] = now
            if instant:
                instants[symbol] = instant
            append(
                (
                    symbol,
                    encode(PriceRecord(symbol, bid, ask, mid, q.bs, q.as_, q.t, q.bx, q.bx, q.ax)),
                    encode(EventRecord("price.updated", symbol, mid, q.t)),
                )
            )
        self.accepted += len(updates)
        return updates
