"""Fair turns on the event loop for a reader that never has to wait.

A busy feed always has the next frame buffered, so ``recv()`` returns without
suspending and the read loop would keep the event loop to itself: the HTTP API (``/health``
among it) and the Redis reply reader would wait until the socket ran dry. The read loop
asks :class:`TurnBudget` after each frame whether it has worked for its budget without
waiting, and if so gives everything else one turn (docs/architecture.md, "Fair turns").
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_TURN", "WAITED", "TurnBudget"]

# Long enough that a turn costs nothing measurable (one loop pass every few ms), short
# enough that a request needing a handful of turns is answered in tens of milliseconds.
DEFAULT_TURN: Final = 0.001
# A recv() that returns this long after the previous frame was done suspended (a
# buffered frame comes back in microseconds): the loop had its turns meanwhile. Taking a
# wait for none only makes a turn come early; the other way round, late.
WAITED: Final = 0.00005


class TurnBudget:
    """Says when a reader has worked ``budget`` seconds without suspending.

    The read loop tells it when each frame arrived (:meth:`received`) and asks, once the
    frame is handled, whether a turn is due (:meth:`due`). A frame that arrived only
    after a wait starts a new stretch of work: a reader paced by its feed never yields
    on top of its waits, so a moderate feed's frames are handled as soon as they come.
    """

    __slots__ = ("_budget", "_done", "_since")

    def __init__(self, start: float, budget: float = DEFAULT_TURN) -> None:
        if budget < 0:
            raise ValueError("a turn budget is zero or more seconds")
        self._budget = budget
        self._since = start  # when the current stretch of work began
        self._done = start  # when the last frame was handled (or the turn given)

    def received(self, now: float) -> None:
        """A frame arrived at ``now``; after a wait, the stretch of work starts again."""
        if now - self._done > WAITED:
            self._since = now

    def due(self, now: float) -> bool:
        """The frame is handled at ``now``: True when the reader should give a turn now
        (the next stretch then starts from ``now``)."""
        self._done = now
        if now - self._since >= self._budget:
            self._since = now
            return True
        return False
