"""Fair turns on the event loop for a reader that never has to wait.

A busy feed always has the next frame buffered, so ``recv()`` returns without
suspending and the read loop would keep the event loop to itself: the HTTP API (``/health``
among it) and the Redis reply reader would wait until the socket ran dry. The read loop
asks :class:`TurnBudget` after each frame whether it has held the loop for its budget,
and if so gives everything else one turn (docs/architecture.md, "Fair turns").
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_TURN", "TurnBudget"]

# Long enough that a turn costs nothing measurable (one loop pass every few ms), short
# enough that a request needing a handful of turns is answered in tens of milliseconds.
DEFAULT_TURN: Final = 0.001


class TurnBudget:
    """Says when a reader has run for ``budget`` seconds since it last gave a turn."""

    __slots__ = ("_budget", "_since")

    def __init__(self, start: float, budget: float = DEFAULT_TURN) -> None:
        if budget < 0:
            raise ValueError("a turn budget is zero or more seconds")
        self._budget = budget
        self._since = start

    def due(self, now: float) -> bool:
        """True when the reader should yield now; the budget starts again from ``now``."""
        if now - self._since >= self._budget:
            self._since = now
            return True
        return False
