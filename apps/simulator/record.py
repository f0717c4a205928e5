"""The record of what crossed the simulator's wire, for tests and the REST prices.

:class:`WireRecord` counts auth attempts and quotes sent, keeps every client message
and the last quote sent per symbol. The positions and snapshots endpoints price off
those last quotes.
"""

from __future__ import annotations

import operator
from typing import Any, Final

from apps.simulator.quotes import QuoteTick, tick_to_dict
from apps.simulator.tape import TapeFrame

__all__ = ["WireRecord"]

_SYMBOL_OF: Final = operator.itemgetter(0)


class WireRecord:
    """Counters and last quotes; sessions and broadcasts write, tests and REST read."""

    def __init__(self) -> None:
        self.quotes_sent = 0
        self.auth_attempts = 0
        self.client_messages: list[dict[str, Any]] = []
        # Generated quotes stay ticks until read: building dicts for every quote
        # would cost more than generating it.
        # Tape frames (apps/simulator/tape.py) stay where they came from until read.
        self._last: dict[str, tuple[QuoteTick, int] | dict[str, Any] | TapeFrame] = {}

    def auth_attempted(self) -> None:
        """Count one auth message."""
        self.auth_attempts += 1

    def client_message(self, message: dict[str, Any]) -> None:
        """Keep one decoded client message."""
        self.client_messages.append(message)

    def ticks_sent(self, ticks: list[QuoteTick], ns: int) -> None:
        """Record a generated frame whose i-th quote was stamped ``ns + i``."""
        count = len(ticks)
        self.quotes_sent += count
        # Iterated in C: this runs for every generated quote.
        stamped = zip(ticks, range(ns, ns + count), strict=True)
        self._last.update(zip(map(_SYMBOL_OF, ticks), stamped, strict=True))

    def tape_sent(self, frame: TapeFrame) -> None:
        """Record a frame sent from a quote tape (apps/simulator/tape.py)."""
        self.quotes_sent += frame.count
        self._last.update(dict.fromkeys(frame.symbols(), frame))

    def quotes_injected(self, frame: list[dict[str, Any]]) -> None:
        """Record an injected frame; messages without a string ``S`` are only counted."""
        for message in frame:
            symbol = message.get("S")
            if isinstance(symbol, str):
                self._last[symbol] = message
        self.quotes_sent += len(frame)

    def last_quote(self, symbol: str) -> dict[str, Any] | None:
        """The last quote object sent for ``symbol`` (a copy), or ``None``."""
        entry = self._last.get(symbol)
        if entry is None:
            return None
        return _quote(symbol, entry)

    def last_quotes(self) -> dict[str, dict[str, Any]]:
        """Symbol -> the last quote object sent for it (copies)."""
        out: dict[str, dict[str, Any]] = {}
        for symbol, entry in list(self._last.items()):
            quote = _quote(symbol, entry)
            if quote is not None:
                out[symbol] = quote
        return out


def _quote(
    symbol: str, entry: tuple[QuoteTick, int] | dict[str, Any] | TapeFrame
) -> dict[str, Any] | None:
    if isinstance(entry, dict):
        return dict(entry)
    if isinstance(entry, TapeFrame):
        return entry.quote(symbol)
    return tick_to_dict(*entry)
