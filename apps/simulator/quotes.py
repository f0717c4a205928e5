"""Random-walk quotes: realistic, reproducible prices for any symbol. Pure: no I/O.

Prices live as integer cents from generation to the wire, so a JSON frame carries
exactly two-decimal numbers (``187.42``, never ``187.42000000001``) and a client can
parse them into ``Decimal`` without loss. The random steps come from a pre-drawn table.
The wire encodings are in ``apps/simulator/encoding.py``.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

__all__ = [
    "CONDITIONS",
    "DEFAULT_UNIVERSE",
    "QuoteGenerator",
    "QuoteTick",
    "format_price",
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
CONDITIONS: Final = ["R"]  # the quote condition every simulated quote carries
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
        "c": list(CONDITIONS),
        "z": tick.tape,
        "t": rfc3339_ns(ns),
    }
