"""The simulator's wire encodings of quotes: JSON and msgpack, as Alpaca sends them.

Everything that can be computed once is: price literals come from a cache, so a frame
costs one struct per quote plus one encoder call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from apps.simulator.quotes import CONDITIONS, QuoteTick, format_price, parse_rfc3339_ns, rfc3339_ns

__all__ = [
    "JsonEncoder",
    "MsgpackEncoder",
    "WireEncoder",
    "msgpack_timestamp",
    "quote_fragment",
]

_NS_PER_S: Final = 1_000_000_000


def msgpack_timestamp(ns: int) -> msgspec.msgpack.Ext:
    """The msgpack Timestamp extension (type -1) for ``ns``, as alpaca-py decodes it."""
    sec, frac = divmod(ns, _NS_PER_S)
    # The smallest form, as msgpack-python picks it: timestamp32, 64 or 96.
    if frac == 0 and 0 <= sec < (1 << 32):
        return msgspec.msgpack.Ext(-1, sec.to_bytes(4, "big"))
    if 0 <= sec < (1 << 34):
        # timestamp64: 30 bits of nanoseconds over 34 bits of seconds.
        return msgspec.msgpack.Ext(-1, ((frac << 34) | sec).to_bytes(8, "big"))
    return msgspec.msgpack.Ext(-1, frac.to_bytes(4, "big") + sec.to_bytes(8, "big", signed=True))


# Field order is wire order: "T" must come first (the Go SDK's msgpack reader requires it).
class _JsonQuote(msgspec.Struct):
    T: str
    S: str
    bx: str
    bp: msgspec.Raw
    bs: int
    ax: str
    ap: msgspec.Raw
    as_: int = msgspec.field(name="as")
    c: list[str] = msgspec.field(default_factory=list)
    z: str = ""
    t: str = ""


class _MsgpackQuote(msgspec.Struct):
    T: str
    S: str
    bx: str
    bp: float
    bs: int
    ax: str
    ap: float
    as_: int = msgspec.field(name="as")
    c: list[str] = msgspec.field(default_factory=list)
    z: str = ""
    t: msgspec.msgpack.Ext | None = None


def _t_first(message: Mapping[str, Any]) -> dict[str, Any]:
    if "T" not in message:
        return dict(message)
    ordered: dict[str, Any] = {"T": message["T"]}
    ordered.update(message)
    return ordered


class WireEncoder:
    """Encodes server frames for one codec: :class:`JsonEncoder` or :class:`MsgpackEncoder`."""

    binary: bool = False

    def encode(self, frame: Sequence[Mapping[str, Any]]) -> bytes:
        """One frame (an array of objects), each object's ``T`` moved to the front."""
        raise NotImplementedError

    def encode_ticks(self, ticks: Sequence[QuoteTick], ns: int) -> bytes:
        """One data frame; the i-th quote is stamped ``ns + i`` so times stay distinct."""
        raise NotImplementedError


class _PriceLiterals(dict[int, msgspec.Raw]):
    # A dict whose misses fill themselves: the hot path is one C-level lookup.
    def __missing__(self, cents: int) -> msgspec.Raw:
        raw = self[cents] = msgspec.Raw(format_price(cents).encode())
        return raw


class JsonEncoder(WireEncoder):
    """Text frames; ``Decimal`` values become JSON numbers with exactly their text."""

    binary = False

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder(decimal_format="number")
        self._prices = _PriceLiterals()
        self._second = -1
        self._prefix = ""

    def encode(self, frame: Sequence[Mapping[str, Any]]) -> bytes:
        return self._encoder.encode([_t_first(message) for message in frame])

    def encode_ticks(self, ticks: Sequence[QuoteTick], ns: int) -> bytes:
        sec, frac = divmod(ns, _NS_PER_S)
        if frac + len(ticks) > _NS_PER_S:
            # The frame straddles a second boundary: rare, take the general path.
            stamps = [rfc3339_ns(ns + i) for i in range(len(ticks))]
        else:
            if sec != self._second:
                self._second = sec
                self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
            prefix = self._prefix
            stamps = [
                f"{prefix}{digits}Z"
                if (digits := f"{frac + i:09d}".rstrip("0"))
                else f"{prefix[:-1]}Z"
                for i in range(len(ticks))
            ]
        price = self._prices
        conditions = CONDITIONS
        quotes = [
            _JsonQuote(
                "q",
                tick[0],
                tick[5],
                price[tick[1]],
                tick[3],
                tick[6],
                price[tick[2]],
                tick[4],
                conditions,
                tick[7],
                stamp,
            )
            for tick, stamp in zip(ticks, stamps, strict=True)
        ]
        return self._encoder.encode(quotes)


_FRAGMENT_ENCODER: Final = msgspec.json.Encoder()


def quote_fragment(tick: QuoteTick) -> bytes:
    """The JSON of one quote as :meth:`JsonEncoder.encode_ticks` writes it, cut after
    the opening quote of its ``t`` value: the time text and ``"}`` complete it."""
    quote = _JsonQuote(
        "q",
        tick[0],
        tick[5],
        msgspec.Raw(format_price(tick[1]).encode()),
        tick[3],
        tick[6],
        msgspec.Raw(format_price(tick[2]).encode()),
        tick[4],
        CONDITIONS,
        tick[7],
        "",
    )
    return _FRAGMENT_ENCODER.encode(quote)[:-2]


def _msgpack_value(key: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if key == "t" and isinstance(value, str):
        return msgpack_timestamp(parse_rfc3339_ns(value))
    if key == "t" and isinstance(value, datetime):
        return msgpack_timestamp(int(value.timestamp()) * _NS_PER_S + value.microsecond * 1000)
    return value


class MsgpackEncoder(WireEncoder):
    """Binary frames as alpaca-py and the Go SDK request them: float prices, Timestamp ``t``."""

    binary = True

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()

    def encode(self, frame: Sequence[Mapping[str, Any]]) -> bytes:
        return self._encoder.encode(
            [
                {key: _msgpack_value(key, value) for key, value in _t_first(message).items()}
                for message in frame
            ]
        )

    def encode_ticks(self, ticks: Sequence[QuoteTick], ns: int) -> bytes:
        conditions = CONDITIONS
        # int / int is correctly rounded: 18742 / 100 is the float nearest to 187.42.
        quotes = [
            _MsgpackQuote(
                "q",
                tick[0],
                tick[5],
                tick[1] / 100,
                tick[3],
                tick[6],
                tick[2] / 100,
                tick[4],
                conditions,
                tick[7],
                msgpack_timestamp(ns + i),
            )
            for i, tick in enumerate(ticks)
        ]
        return self._encoder.encode(quotes)
