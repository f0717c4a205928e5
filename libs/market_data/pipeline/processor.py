"""Quotes in, Redis-ready payloads out: validate with exact decimals, then encode.

This is the hot path. It applies the same rules as :class:`~libs.market_data.types.QuoteData`
(:func:`~libs.market_data.types.check_quote`) without building a pydantic model per quote,
and encodes with msgspec structs whose JSON is byte-for-byte what ``PriceData`` and
``PriceUpdateEvent`` produce (a test holds the two together).
"""

from __future__ import annotations

import heapq
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
from typing import Any, Final

import msgspec

from libs.market_data.native import QuoteBlock
from libs.market_data.pipeline.records import EventRecord, PriceRecord, PriceUpdate, new_epoch
from libs.market_data.pipeline.stats import ProcessorStats
from libs.market_data.stream.messages import CryptoQuote, Quote
from libs.market_data.symbols import WILDCARD
from libs.market_data.types import MAX_PRICE, RejectReason
from libs.telemetry import instant_key

__all__ = ["EventRecord", "PriceRecord", "PriceUpdate", "QuoteProcessor", "new_epoch"]

_TWO: Final = Decimal(2)
_ZERO: Final = Decimal(0)
# The default 28 digits, with InvalidOperation trapped (check_quote relies on NaN
# comparisons raising) and Inexact too: a mid price that would need rounding (absurd
# precision, or an exponent so small it underflows to 0) is refused, never stored rounded.
_CONTEXT: Final = Context(traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
_UNSUBSCRIBED: Final = RejectReason.UNSUBSCRIBED
_MALFORMED: Final = RejectReason.MALFORMED
_NEGATIVE_PRICE: Final = RejectReason.NEGATIVE_PRICE
_NEGATIVE_SIZE: Final = RejectReason.NEGATIVE_SIZE
_CROSSED: Final = RejectReason.CROSSED
_STALE: Final = RejectReason.STALE
# The order of the counts the native path returns (libs/market_data/native/_quotes.c).
_NATIVE_REASONS: Final = (_UNSUBSCRIBED, _MALFORMED, _CROSSED, _NEGATIVE_SIZE, _STALE)


class QuoteProcessor:
    """Validates quotes and encodes the accepted ones; counts what it drops and why.

    Each accepted quote takes the next ``seq`` of its symbol (from 1) in this
    processor's ``epoch``; a dropped quote takes none. Numbering never restarts within
    an epoch, not even when a symbol is unsubscribed and subscribed again.
    """

    __slots__ = (
        "_encode",
        "_encode_lines",
        "_epoch_json",
        "_instants",
        "_seqs",
        "accepted",
        "epoch",
        "last_accepted",
        "rejected",
    )

    def __init__(self, epoch: str | None = None) -> None:
        self.epoch = new_epoch() if epoch is None else epoch
        self._epoch_json = msgspec.json.encode(self.epoch)  # for the native path
        # symbol -> seq of its last accepted quote; kept by forget() (see above)
        self._seqs: dict[str, int] = {}
        encoder = msgspec.json.Encoder()
        self._encode = encoder.encode
        self._encode_lines = encoder.encode_lines
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

    def begin_epoch(self, epoch: str) -> None:
        """Start ``epoch``: every symbol's ``seq`` numbers from 1 again."""
        self.epoch = epoch
        self._epoch_json = msgspec.json.encode(epoch)
        self._seqs.clear()

    @property
    def tracked(self) -> int:
        """Symbols with an accepted quote kept (named ones, and the wildcard's)."""
        return len(self.last_accepted)

    def stalest(self, now: float, limit: int) -> list[tuple[str, float]]:
        """The ``limit`` symbols whose last accepted quote is oldest, with their ages."""
        last = self.last_accepted
        # /health asks this with the whole market tracked: the cut-off comes from the bare
        # times (compared in C), then only the few at or below it are sorted with a key.
        candidates: Iterable[tuple[str, float]] = last.items()
        if len(last) > limit > 0:
            cutoff = heapq.nsmallest(limit, last.values())[-1]
            candidates = [(symbol, at) for symbol, at in last.items() if at <= cutoff]
        oldest = sorted(candidates, key=lambda item: item[1])[: max(limit, 0)]
        return [(symbol, max(0.0, now - at)) for symbol, at in oldest]

    def forget(self, symbols: Iterable[str]) -> None:
        """Drop what is kept of symbols no longer subscribed."""
        for symbol in symbols:
            self.last_accepted.pop(symbol, None)
            self._instants.pop(symbol, None)

    def last_instant(self, symbol: str) -> str | None:
        """The ``instant_key`` of ``symbol``'s last accepted quote (the gap fill compares)."""
        return self._instants.get(symbol)

    def next_seq(self, symbol: str) -> int:
        """Take the next seq of ``symbol``, for an update built outside :meth:`process`."""
        seq = self._seqs.get(symbol, 0) + 1
        self._seqs[symbol] = seq
        return seq

    def process(
        self,
        quotes: Iterable[Quote | CryptoQuote],
        subscribed: Collection[str],
        *,
        fractional: bool = False,
    ) -> list[PriceUpdate]:
        """Return the updates for valid quotes of subscribed symbols, in arrival order.

        ``subscribed`` holding ``*`` takes every symbol (the whole market).
        ``fractional``: the sizes are Decimals (the crypto feed), kept exact as text.
        """
        # check_quote relies on NaN comparisons trapping, and mid on the default precision:
        # both hold in this context whatever the caller's thread has set.
        with localcontext(_CONTEXT):
            return self._process(quotes, subscribed, fractional)

    def process_block(self, block: QuoteBlock, subscribed: Collection[str]) -> list[PriceUpdate]:
        """:meth:`process` for a frame the native path parsed: the same rules, numbering
        and bytes (a test holds the two together), done in C."""
        updates, newest, counts = block.process(
            subscribed, WILDCARD in subscribed, self._seqs, self._instants,
            self._epoch_json, instant_key,
        )  # fmt: skip
        if any(counts):
            rejected = self.rejected
            for reason, count in zip(_NATIVE_REASONS, counts, strict=True):
                if count:
                    rejected[reason] += count
        if updates:
            self.last_accepted.update(dict.fromkeys(newest, time.time()))
            self.accepted += len(updates)
        return updates

    def _process(
        self, quotes: Iterable[Quote | CryptoQuote], subscribed: Collection[str], fractional: bool
    ) -> list[PriceUpdate]:
        # One pass validates and numbers every quote and builds its event; the cache
        # records are built only for each symbol's newest quote of the frame, the only
        # ones the sink writes (docs/architecture.md, "Fewer commands per quote"): the
        # others carry ``b""``. check_quote is inlined: a call per quote cost 10% here.
        instants = self._instants
        seqs = self._seqs
        epoch = self.epoch
        rejected = self.rejected
        wildcard = WILDCARD in subscribed
        events: list[EventRecord] = []
        accepted: list[Quote | CryptoQuote] = []
        newest: dict[str, int] = {}  # symbol -> index of its newest accepted quote
        for q in quotes:
            symbol = q.S
            if not wildcard and symbol not in subscribed:
                # Alpaca drains its buffers for a while after an unsubscribe.
                rejected[_UNSUBSCRIBED] += 1
                continue
            t = q.t
            if t[4:17:3] != "--T::":  # YYYY-MM-DDTHH:MM:SS...
                rejected[_MALFORMED] += 1
                continue
            bid = q.bp
            ask = q.ap
            # int (stocks) or Decimal (crypto); Any, as the two paths below tell them apart.
            bs: Any = q.bs
            as_: Any = q.as_
            # The rules of check_quote, in its order (a test holds the two together).
            try:
                if fractional and not (bs.is_finite() and as_.is_finite()):
                    rejected[_MALFORMED] += 1
                    continue
                if bid < _ZERO or ask < _ZERO:  # -Infinity lands here
                    rejected[_NEGATIVE_PRICE] += 1
                    continue
                if ask < bid:
                    rejected[_CROSSED] += 1
                    continue
                if ask >= MAX_PRICE:  # bid <= ask, so this bounds both; +Infinity too
                    rejected[_MALFORMED] += 1
                    continue
                if bs < 0 or as_ < 0:
                    rejected[_NEGATIVE_SIZE] += 1
                    continue
                mid = (bid + ask) / _TWO
            except ArithmeticError:  # NaN compared (InvalidOperation); Inexact: see _CONTEXT
                rejected[_MALFORMED] += 1
                continue
            instant = t
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
                    rejected[_STALE] += 1
                    continue
                instants[symbol] = instant
            seq = seqs.get(symbol, 0) + 1
            seqs[symbol] = seq
            newest[symbol] = len(events)
            event = EventRecord("price.updated", symbol, mid, bid, ask, bs, as_, seq, epoch, t)
            events.append(event)
            accepted.append(q)
        if not events:
            return []
        # One encoder call for the frame's events; JSON never holds a raw newline.
        event_json = self._encode_lines(events).split(b"\n")
        event_json.pop()  # the empty text after the last newline
        price_json = [b""] * len(events)
        encode = self._encode
        for index in newest.values():
            e = events[index]
            q = accepted[index]
            price_json[index] = encode(
                PriceRecord(
                    e.symbol, e.bid, e.ask, e.price, e.bid_size, e.ask_size,
                    e.timestamp, q.bx, q.bx, q.ax, e.seq, epoch,
                )
            )  # fmt: skip
        self.last_accepted.update(dict.fromkeys(newest, time.time()))
        self.accepted += len(events)
        symbols = [e.symbol for e in events]
        return list(zip(symbols, price_json, event_json, strict=True))
