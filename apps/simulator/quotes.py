"""Random-walk quotes and their wire encodings (JSON and msgpack). Pure: no I/O.

Prices live as integer cents from generation to the wire, so a JSON frame carries
exactly two-decimal numbers (``187.42``, never ``187.42000000001``) and a client can
parse them into ``Decimal`` without loss. Everything that can be computed once is:
the random steps come from a pre-drawn table and price literals from a cache, so a
frame costs one struct per quote plus one encoder call.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

import msgspec

__all__ = [
    "DEFAULT_UNIVERSE",
    "JsonEncoder",
    "MsgpackEncoder",
    "QuoteGenerator",
    "QuoteTick",
    "WireEncoder",
    "format_price",
    "msgpack_timestamp",
    "parse_rfc3339_ns",
    "rfc3339_ns",
    "start_price_cents",
    "tick_to_dict",
]

# What a `"*"` quote subscription streams: ten liquid, well-known tickers.
DEFAULT_UNIVERSE: Final[tuple[str, ...]] = (
    "AAPL",
    "MSFT",
    "GOOGL",
    "AMZN",
    "NVDA",
    "META",
    "TSLA",
    "SPY",
    "QQQ",
    "AMD",
)

_MIN_START_CENTS: Final = 20_00
_MAX_START_CENTS: Final = 600_00
# A prime table length, so per-symbol offsets do not make symbols move in lockstep.
_STEP_TABLE_SIZE: Final = 8191
# The walk is pulled back once it strays this far (in 1/100) from its start price.
_BAND_PERCENT: Final = 25
_EXCHANGES: Final = ("Q", "P", "Z", "K", "V", "N", "B", "H", "J", "U", "X", "Y")
_TAPES: Final = ("A", "B", "C")
_CONDITIONS: Final = ["R"]
_NS_PER_S: Final = 1_000_000_000
_RFC3339: Final = re.compile(
    r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)"
)


class QuoteTick(NamedTuple):
    """One generated quote, before encoding. Prices in integer cents."""

    symbol: str
    bid_cents: int
    ask_cents: int
    bid_size: int
    ask_size: int
    bid_exchange: str
    ask_exchange: str
    tape: str


def _digest(text: str) -> int:
    # hash() is salted per process; the start price must be the same on every run.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def start_price_cents(symbol: str, seed: int | None = None) -> int:
    """The deterministic start price of ``symbol`` in cents, within $20..$600."""
    span = _MAX_START_CENTS - _MIN_START_CENTS + 1
    return _MIN_START_CENTS + _digest(f"{seed or 0}:{symbol}") % span


def format_price(cents: int) -> str:
    """``18742`` -> ``"187.42"``: the exact decimal text of a price in cents."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def rfc3339_ns(ns: int) -> str:
    """RFC 3339 UTC time with nanoseconds, trailing zeros trimmed as Alpaca sends it."""
    sec, frac = divmod(ns, _NS_PER_S)
    prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    digits = f"{frac:09d}".rstrip("0")
    return f"{prefix}.{digits}Z" if digits else f"{prefix}Z"


def parse_rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time; keeps all nine digits."""
    # datetime alone would cut the fraction to microseconds.
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time with a UTC offset: {text!r}")
    whole, fraction, offset = match.groups()
    if offset in ("Z", "z"):
        offset = "+00:00"
    seconds = int(datetime.fromisoformat(whole + offset).timestamp())
    return seconds * _NS_PER_S + int((fraction or "").ljust(9, "0")[:9])


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


class _SymbolWalk:
    __slots__ = ("bid", "high", "low", "pos", "scale", "tape")

    def __init__(self, symbol: str, seed: int | None) -> None:
        start = start_price_cents(symbol, seed)
        digest = _digest(f"walk:{symbol}")
        self.bid = start
        self.high = start * (100 + _BAND_PERCENT) // 100
        self.low = start * (100 - _BAND_PERCENT) // 100
        # About one cent per $100 of price per step unit: steps stay "a few cents".
        self.scale = max(1, start // 100_00)
        self.pos = digest % _STEP_TABLE_SIZE
        self.tape = _TAPES[digest % len(_TAPES)]


_Step = tuple[int, int, int, int, str, str]


def _draw_steps(rng: random.Random) -> list[_Step]:
    moves = rng.choices((-3, -2, -1, 0, 1, 2, 3), (2, 8, 20, 40, 20, 8, 2), k=_STEP_TABLE_SIZE)
    spreads = rng.choices((1, 2, 3, 4, 5), (35, 30, 18, 10, 7), k=_STEP_TABLE_SIZE)
    size_weights = (30, 22, 15, 10, 8, 6, 4, 3, 2)
    bid_sizes = rng.choices(range(1, 10), size_weights, k=_STEP_TABLE_SIZE)
    ask_sizes = rng.choices(range(1, 10), size_weights, k=_STEP_TABLE_SIZE)
    bid_exchanges = rng.choices(_EXCHANGES, k=_STEP_TABLE_SIZE)
    ask_exchanges = rng.choices(_EXCHANGES, k=_STEP_TABLE_SIZE)
    return list(
        zip(moves, spreads, bid_sizes, ask_sizes, bid_exchanges, ask_exchanges, strict=True)
    )


class QuoteGenerator:
    """Per-symbol random walks of two-decimal quotes; never crossed, never below 1 cent.

    Start prices depend only on the symbol and ``seed``; with a ``seed`` the whole
    sequence is reproducible. Symbols are created on first use.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._steps = _draw_steps(random.Random(seed))
        self._walks: dict[str, _SymbolWalk] = {}

    def _walk(self, symbol: str) -> _SymbolWalk:
        walk = self._walks.get(symbol)
        if walk is None:
            walk = self._walks[symbol] = _SymbolWalk(symbol, self._seed)
        return walk

    def next_tick(self, symbol: str) -> QuoteTick:
        """The next quote of ``symbol``."""
        return self.next_ticks((symbol,), 0, 1)[0][0]

    def next_ticks(
        self, symbols: Sequence[str], cursor: int, count: int
    ) -> tuple[list[QuoteTick], int]:
        """``count`` quotes taken round-robin over ``symbols`` from index ``cursor``.

        Returns the quotes and the cursor to pass next time.
        """
        n_symbols = len(symbols)
        if n_symbols == 0 or count <= 0:
            return [], cursor
        steps = self._steps
        walks = self._walks
        table_size = _STEP_TABLE_SIZE
        new = tuple.__new__
        out: list[QuoteTick] = []
        append = out.append
        index = cursor % n_symbols
        for _ in range(count):
            symbol = symbols[index]
            index += 1
            if index == n_symbols:
                index = 0
            walk = walks.get(symbol) or self._walk(symbol)
            pos = walk.pos
            move, spread, bid_size, ask_size, bid_exchange, ask_exchange = steps[pos]
            pos += 1
            walk.pos = pos if pos < table_size else 0
            bid = walk.bid
            if move:
                step = move * walk.scale
                # Reverting at the band edges keeps bid >= low >= $15: never negative.
                if (move > 0 and bid + step > walk.high) or (move < 0 and bid + step < walk.low):
                    step = -step
                bid += step
                walk.bid = bid
            append(
                new(
                    QuoteTick,
                    (
                        symbol,
                        bid,
                        bid + spread,
                        bid_size,
                        ask_size,
                        bid_exchange,
                        ask_exchange,
                        walk.tape,
                    ),
                )
            )
        return out, index


def tick_to_dict(tick: QuoteTick, ns: int) -> dict[str, Any]:
    """The quote object as sent, with exact ``Decimal`` prices and the RFC 3339 time."""
    return {
        "T": "q",
        "S": tick.symbol,
        "bx": tick.bid_exchange,
        "bp": Decimal(format_price(tick.bid_cents)),
        "bs": tick.bid_size,
        "ax": tick.ask_exchange,
        "ap": Decimal(format_price(tick.ask_cents)),
        "as": tick.ask_size,
        "c": list(_CONDITIONS),
        "z": tick.tape,
        "t": rfc3339_ns(ns),
    }


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
        conditions = _CONDITIONS
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
        conditions = _CONDITIONS
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
