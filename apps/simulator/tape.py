"""Quote frames at full speed: a precomputed tape of quote fragments, one join per frame.

Generating and encoding every quote in Python cost the simulator about 2 µs of CPU per
quote, CPU a benchmark's service needs on a small machine. At high rates a session
streams from a :class:`QuoteTape` instead: each quote of a walk order (the session's
symbols, round-robin or Zipf-skewed) is generated and encoded once, as the JSON of the
quote up to its ``t`` value (``encoding.quote_fragment``); a frame is then slices of
that tape, the time texts, and one ``bytes.join``. The time stays the send time, one
nanosecond apart per quote, as :meth:`JsonEncoder.encode_ticks` stamps it.

The tape is a closed walk: its first half comes from the :class:`QuoteGenerator`
(built lazily, as the cursor first reaches it), its second half plays each symbol's
quotes of the first half backwards, so every symbol's price moves by walk steps all
the way round and back to where the tape starts over. Pure: no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec

from apps.simulator.encoding import quote_fragment
from apps.simulator.quotes import QuoteGenerator, rfc3339_ns

__all__ = ["MIN_HALF", "TAPE_MIN_RATE", "QuoteTape", "TapeCache", "TapeFrame"]

# From this rate on (quotes/s), a session streams JSON stock quotes from a tape. Below
# it each quote is generated live, so a demo's walk never retraces.
TAPE_MIN_RATE: Final = 1000.0

# Quotes in the tape's generated half, at least: 200 steps out and back per symbol
# for 100 symbols. A walk order longer than this (the Zipf universe) is the half.
MIN_HALF: Final = 20_000
_CHUNK: Final = 1024  # quotes generated at a time while the first half is built
_NS_PER_S: Final = 1_000_000_000
# A time's nine fraction digits are a head (the second and the first five digits,
# shared by up to 10,000 consecutive quotes) and a tail from this table: the last
# four digits, trailing zeros trimmed as Alpaca sends them, then the quote's end.
_SPLIT: Final = 10_000
_TAILS: Final = [b'Z"},'] + [f"{k:04d}".rstrip("0").encode() + b'Z"},' for k in range(1, _SPLIT)]
_DECODER: Final = msgspec.json.Decoder(float_hook=Decimal)


class TapeFrame:
    """Where a sent frame came from: enough to rebuild any of its quotes when asked."""

    __slots__ = ("count", "ns", "start", "tape")

    def __init__(self, tape: QuoteTape, start: int, count: int, ns: int) -> None:
        self.tape, self.start, self.count, self.ns = tape, start, count, ns

    def symbols(self) -> list[str]:
        """The frame's quotes' symbols, in order."""
        tape, end = self.tape, self.start + self.count
        if end <= tape.length:
            return tape.symbols[self.start : end]
        return tape.symbols[self.start :] + tape.symbols[: end - tape.length]

    def quote(self, symbol: str) -> dict[str, Any] | None:
        """The last quote of ``symbol`` in this frame as sent (prices exact Decimals)."""
        tape = self.tape
        for i in range(self.count - 1, -1, -1):
            position = (self.start + i) % tape.length
            if tape.symbols[position] == symbol:
                text = tape.fragments[position] + rfc3339_ns(self.ns + i).encode() + b'"}'
                quote: dict[str, Any] = _DECODER.decode(text)
                return quote
        return None


class QuoteTape:
    """A closed walk of encoded quotes over ``order`` (see the module docstring)."""

    def __init__(self, order: Sequence[str], generator: QuoteGenerator) -> None:
        if not order:
            raise ValueError("a tape needs at least one symbol")
        self._order = tuple(order)
        self._generator = generator
        self._next = 0  # the generator's cursor into the walk order
        n = len(order)
        # A whole number of walk orders: position p is always order[p % n].
        self.half = n * -(-MIN_HALF // n)
        self.length = 2 * self.half
        self.symbols: list[str] = []
        self.fragments: list[bytes] = []
        self._second = -1
        self._prefix = b""

    def frame(self, start: int, count: int, ns: int) -> tuple[bytes, TapeFrame, int]:
        """The JSON frame of ``count`` quotes from position ``start``, the i-th stamped
        ``ns + i``; where it came from, and the position to pass next time."""
        start %= self.length
        end = start + count
        self._build(min(end, self.length))
        if end <= self.length:
            fragments = self.fragments[start:end]
        else:  # the frame wraps round the tape's end
            fragments = self.fragments[start:] + self.fragments[: end - self.length]
        heads, tails = self._stamps(ns, count)
        parts: list[bytes] = [b""] * (3 * count + 1)
        parts[0] = b"["
        parts[1::3] = fragments
        parts[2::3] = heads
        parts[3::3] = tails
        return b"".join(parts), TapeFrame(self, start, count, ns), end % self.length

    def _build(self, end: int) -> None:
        """Make positions ``[0, end)`` exist."""
        fragments = self.fragments
        while len(fragments) < min(end, self.half):
            count = min(max(_CHUNK, end - len(fragments)), self.half - len(fragments))
            ticks, self._next = self._generator.next_ticks(self._order, self._next, count)
            fragments.extend(map(quote_fragment, ticks))
            self.symbols.extend(tick[0] for tick in ticks)
        if end > self.half and len(fragments) == self.half:
            self._mirror()

    def _mirror(self) -> None:
        # Each symbol's k-th quote of the second half is its k-th last of the first.
        half = self.half
        positions: dict[str, list[int]] = {}
        for position, symbol in enumerate(self.symbols):
            positions.setdefault(symbol, []).append(position)
        second: list[bytes] = [b""] * half
        fragments = self.fragments
        for own in positions.values():
            for at, source in zip(own, reversed(own), strict=True):
                second[at] = fragments[source]
        fragments.extend(second)
        self.symbols.extend(self.symbols[:half])

    def _stamps(self, ns: int, count: int) -> tuple[list[bytes], list[bytes]]:
        """Each quote's time text, as a head and a tail; the last tail closes the frame."""
        sec, frac = divmod(ns, _NS_PER_S)
        if frac + count > _NS_PER_S:  # the frame straddles a second: rare, the plain way
            heads = [rfc3339_ns(ns + i)[:-1].encode() for i in range(count)]
            tails = [b'Z"},'] * count
            tails[-1] = b'Z"}]'
            return heads, tails
        if sec != self._second:
            self._second = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec)).encode()
        high, low = divmod(frac, _SPLIT)
        heads, tails = [], []
        left = count
        while left:
            run = min(left, _SPLIT - low)
            head = b"%s%05d" % (self._prefix, high)
            first = len(heads)
            heads += [head] * run
            if low == 0:  # the last four digits are zeros: trim into the head
                heads[first] = head.rstrip(b"0").rstrip(b".")
            tails += _TAILS[low : low + run]
            left -= run
            high, low = high + 1, 0
        tails[-1] = tails[-1][:-1] + b"]"
        return heads, tails


class TapeCache:
    """The tapes of the last few walk orders, shared by the sessions that stream one."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._tapes: dict[tuple[str, ...], QuoteTape] = {}

    def get(self, order: tuple[str, ...], generator: QuoteGenerator) -> QuoteTape:
        tape = self._tapes.pop(order, None) or QuoteTape(order, generator)
        self._tapes[order] = tape  # now the newest
        while len(self._tapes) > self._size:
            del self._tapes[next(iter(self._tapes))]
        return tape
