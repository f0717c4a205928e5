"""Trades and bars in, Redis-ready records out: validate with exact decimals, then encode.

The same rules as quotes (docs/architecture.md, "Trades and bars"): numbers are the
wire's exact decimals, written as strings; a negative price or size is dropped and
counted; a bar whose high is below its low, or whose open or close lies outside them,
is dropped and counted (``out_of_range``); an element older than the last accepted one
of its symbol and kind is dropped (``stale``). An ``updatedBars`` correction carries the
same minute as the bar it corrects, so it replaces it (an equal time is accepted).

Each accepted element becomes an update like a quote's (topic, record JSON, event
JSON); the topic (``trades:AAPL``, ``bars:AAPL``) tells the sink its key and channel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec

from libs.market_data.pipeline.processor import PriceUpdate, QuoteProcessor
from libs.market_data.pipeline.stats import EventStats
from libs.market_data.stream.messages import Bar, CryptoBar, CryptoUpdatedBar, UpdatedBar
from libs.market_data.symbols import WILDCARD
from libs.market_data.types import MAX_PRICE, RejectReason
from libs.telemetry import instant_key

__all__ = ["BarRecord", "EventProcessor", "TradeRecord", "check_bar", "check_trade"]

_TRADES: Final = "trades:"
_BARS: Final = "bars:"


class TradeRecord(msgspec.Struct, frozen=True, gc=False):
    """What ``trade:{SYM}`` holds: the symbol's latest trade."""

    symbol: str
    price: str  # Decimal text
    size: int | str  # int for stocks; crypto's fractional size as Decimal text
    timestamp: str
    exchange: str | None
    id: int
    conditions: list[str] | None
    tape: str | None
    taker_side: str | None  # crypto only: B (buyer) or S (seller) took liquidity
    seq: int
    epoch: str


class TradeEvent(msgspec.Struct, frozen=True, gc=False):
    """Published on ``trade.updated.{SYM}``: the record, with its ``event_type`` first."""

    event_type: str
    symbol: str
    price: str
    size: int | str
    exchange: str | None
    id: int
    conditions: list[str] | None
    tape: str | None
    taker_side: str | None
    seq: int
    epoch: str
    timestamp: str


class BarRecord(msgspec.Struct, frozen=True, gc=False):
    """What ``bar:{SYM}`` holds: the symbol's latest minute bar (``timestamp``: its start)."""

    symbol: str
    open: str
    high: str
    low: str
    close: str
    volume: int | str  # int for stocks; crypto's fractional volume as Decimal text
    vwap: str | None
    trade_count: int
    timestamp: str
    updated: bool  # an updatedBars correction of this minute
    seq: int
    epoch: str


class BarEvent(msgspec.Struct, frozen=True, gc=False):
    """Published on ``bar.updated.{SYM}``."""

    event_type: str
    symbol: str
    open: str
    high: str
    low: str
    close: str
    volume: int | str
    vwap: str | None
    trade_count: int
    updated: bool
    seq: int
    epoch: str
    timestamp: str


def _finite(value: Decimal | int) -> bool:
    return not isinstance(value, Decimal) or value.is_finite()


def check_trade(price: Decimal, size: Decimal | int) -> RejectReason | None:
    """Why a trade is invalid, or ``None``: a negative price or size, or no number at all."""
    if not (price.is_finite() and _finite(size)):
        return RejectReason.MALFORMED
    if price < 0:
        return RejectReason.NEGATIVE_PRICE
    if price >= MAX_PRICE:
        return RejectReason.MALFORMED
    if size < 0:
        return RejectReason.NEGATIVE_SIZE
    return None


def check_bar(bar: Bar | CryptoBar) -> RejectReason | None:
    """Why a bar (or a correction) is invalid, or ``None``."""
    o, h, low, c, vw = bar.o, bar.h, bar.l, bar.c, bar.vw
    prices = (o, h, low, c) if vw is None else (o, h, low, c, vw)
    if not (all(p.is_finite() for p in prices) and _finite(bar.v)):
        return RejectReason.MALFORMED
    if any(p < 0 for p in prices):
        return RejectReason.NEGATIVE_PRICE
    if h >= MAX_PRICE:
        return RejectReason.MALFORMED
    if bar.v < 0 or bar.n < 0:
        return RejectReason.NEGATIVE_SIZE
    if h < low or not (low <= o <= h) or not (low <= c <= h):
        return RejectReason.OUT_OF_RANGE
    return None


def _size_text(value: Decimal | int) -> int | str:
    return value if isinstance(value, int) else str(value)


class EventProcessor:
    """Validates trades and bars and encodes the accepted ones; counts the drops by reason.

    ``seq`` counts per topic (a symbol's trades, its bars), in the quote processor's
    ``epoch`` (and from 1 again when it begins a new one): a price event's numbering never
    moves for a trade.
    """

    __slots__ = ("_encode", "_epoch", "_instants", "_quotes", "_seqs", "bars", "bars_rejected",
                 "trades", "trades_rejected")  # fmt: skip

    def __init__(self, quotes: QuoteProcessor) -> None:
        self._quotes = quotes
        self._epoch = quotes.epoch
        self._encode = msgspec.json.Encoder().encode
        self._seqs: dict[str, int] = {}
        self._instants: dict[str, str] = {}  # topic -> instant_key of the last accepted
        self.trades = 0
        self.bars = 0
        self.trades_rejected: Counter[RejectReason] = Counter()
        self.bars_rejected: Counter[RejectReason] = Counter()

    def snapshot(self) -> EventStats:
        return EventStats(
            trades_accepted=self.trades,
            trades_rejected={r.value: n for r, n in sorted(self.trades_rejected.items())},
            bars_accepted=self.bars,
            bars_rejected={r.value: n for r, n in sorted(self.bars_rejected.items())},
        )

    def forget(self, topics: Iterable[str]) -> None:
        """Drop the order state of topics no longer subscribed (``seq`` is kept)."""
        for topic in topics:
            self._instants.pop(topic, None)

    def _order(self, topic: str, stamp: str) -> RejectReason | None:
        """Take ``stamp`` as ``topic``'s newest, unless unreadable or older than the last."""
        try:
            instant = instant_key(stamp)
        except ValueError:
            return RejectReason.MALFORMED
        previous = self._instants.get(topic)
        if previous is not None and instant < previous:
            return RejectReason.STALE
        self._instants[topic] = instant
        return None

    @property
    def epoch(self) -> str:
        epoch = self._quotes.epoch
        if epoch != self._epoch:  # a new epoch began: number from 1 again
            self._epoch = epoch
            self._seqs.clear()
        return epoch

    def _next_seq(self, topic: str) -> int:
        seq = self._seqs.get(topic, 0) + 1
        self._seqs[topic] = seq
        return seq

    def trades_of(self, trades: Iterable[Any], subscribed: Collection[str]) -> list[PriceUpdate]:
        """Updates of the valid trades of subscribed symbols, in arrival order."""
        updates: list[PriceUpdate] = []
        epoch = self.epoch
        wildcard = _TRADES + WILDCARD in subscribed
        rejected = self.trades_rejected
        for t in trades:
            topic = _TRADES + t.S
            if not wildcard and topic not in subscribed:
                rejected[RejectReason.UNSUBSCRIBED] += 1
                continue
            try:
                reason = check_trade(t.p, t.s)
            except InvalidOperation:
                reason = RejectReason.MALFORMED
            if reason is None:
                reason = self._order(topic, t.t)
            if reason is not None:
                rejected[reason] += 1
                continue
            seq = self._next_seq(topic)
            price, size = str(t.p), _size_text(t.s)
            record = TradeRecord(t.S, price, size, t.t, t.x, t.i, t.c, t.z, t.tks, seq, epoch)
            event = TradeEvent(
                "trade.updated", t.S, price, size, t.x, t.i, t.c, t.z, t.tks, seq, epoch, t.t
            )
            updates.append((topic, self._encode(record), self._encode(event)))
        self.trades += len(updates)
        return updates

    def bars_of(self, bars: Iterable[Any], subscribed: Collection[str]) -> list[PriceUpdate]:
        """Updates of the valid bars (and corrections) of subscribed symbols."""
        updates: list[PriceUpdate] = []
        epoch = self.epoch
        wildcard = _BARS + WILDCARD in subscribed
        rejected = self.bars_rejected
        for b in bars:
            topic = _BARS + b.S
            if not wildcard and topic not in subscribed:
                rejected[RejectReason.UNSUBSCRIBED] += 1
                continue
            try:
                reason = check_bar(b)
            except InvalidOperation:
                reason = RejectReason.MALFORMED
            if reason is None:
                reason = self._order(topic, b.t)
            if reason is not None:
                rejected[reason] += 1
                continue
            seq = self._next_seq(topic)
            updated = isinstance(b, UpdatedBar | CryptoUpdatedBar)
            fields = (
                str(b.o), str(b.h), str(b.l), str(b.c), _size_text(b.v),
                None if b.vw is None else str(b.vw), b.n,
            )  # fmt: skip
            record = BarRecord(b.S, *fields, b.t, updated, seq, epoch)
            event = BarEvent("bar.updated", b.S, *fields, updated, seq, epoch, b.t)
            updates.append((topic, self._encode(record), self._encode(event)))
        self.bars += len(updates)
        return updates
