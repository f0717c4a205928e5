"""The subscriber's typed records, and reading them off the wire.

Prices and sizes are exact ``Decimal`` from the JSON's text, as the service wrote them:
a stock's size is a JSON integer, a crypto pair's the exact fractional amount of the base
asset as a string (``"0.00012345"``; README, "Crypto records"). Both read as ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

import msgspec

__all__ = ["LivePrice", "SubscriberUpdate", "UpdateKind", "notice_event", "parse_price"]

UpdateKind = Literal["snapshot", "update", "resync"]


@dataclass(frozen=True, slots=True)
class LivePrice:
    """A symbol's price as the subscriber knows it; prices and sizes are exact ``Decimal``
    (a stock's size is whole, ``Decimal("100")``; a crypto pair's fractional)."""

    symbol: str
    mid: Decimal
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    timestamp: str
    seq: int
    epoch: str


@dataclass(frozen=True, slots=True)
class SubscriberUpdate:
    """One item of the stream.

    ``snapshot`` and ``update`` carry ``symbol`` and ``price`` (a snapshot comes from the
    cache, an update from an event). ``resync`` carries the ``symbols`` about to be re-read
    and the ``reason`` (``seq_gap``, ``epoch``, ``notice:<event_type>``, ``reconnected``).
    """

    kind: UpdateKind
    symbol: str | None = None
    price: LivePrice | None = None
    symbols: tuple[str, ...] = ()
    reason: str = ""


class _Wire(msgspec.Struct):
    """What both payloads share: a PriceData record (``mid``) or an event (``price``)."""

    symbol: str
    bid: Decimal
    ask: Decimal
    # A JSON integer (stocks) or decimal text (crypto): msgspec reads both exactly.
    bid_size: Decimal
    ask_size: Decimal
    timestamp: str
    mid: Decimal | None = None
    price: Decimal | None = None
    seq: int = 0
    epoch: str = ""

    def live(self) -> LivePrice | None:
        mid = self.mid if self.mid is not None else self.price
        if mid is None or not _sane(mid, self.bid, self.ask, self.bid_size, self.ask_size):
            return None
        return LivePrice(
            self.symbol, mid, self.bid, self.ask, self.bid_size, self.ask_size,
            self.timestamp, self.seq, self.epoch,
        )  # fmt: skip


def _sane(*numbers: Decimal) -> bool:
    # msgspec reads "NaN", "Infinity" and negative numbers as Decimals too: none is a price
    # or a size the service writes, so such a payload counts as malformed.
    return all(n.is_finite() and not n.is_signed() for n in numbers)


class _Notice(msgspec.Struct):
    event_type: str = ""


_decode_wire: Final = msgspec.json.Decoder(_Wire).decode
_decode_notice: Final = msgspec.json.Decoder(_Notice).decode


def notice_event(raw: bytes) -> str:
    """The ``event_type`` of a status notice (``unreadable`` if it is not one)."""
    try:
        return _decode_notice(raw).event_type
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "unreadable"


def parse_price(raw: bytes) -> LivePrice | None:
    """A cached record or an event as a :class:`LivePrice`; None if unreadable."""
    try:
        return _decode_wire(raw).live()
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
