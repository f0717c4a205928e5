"""The updates the price sink has not seen land: what gets rewritten, and in what order.

Kept apart from the sink's I/O so the rules can be read (and tested) on their own:

- ``latest`` holds the newest update the sink has taken for each symbol;
- ``pending`` holds, per symbol, the newest update that is neither landed nor in flight:
  held while Redis is down or not answering, or refused by Redis (``-OOM``,
  ``-READONLY``...). An older update never replaces a newer one there, and a newer one
  sent to Redis makes the older pending one obsolete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from libs.market_data.pipeline.processor import PriceUpdate

__all__ = ["UpdateBook"]

logger = logging.getLogger(__name__)


class UpdateBook:
    """Newest update per symbol, and which of them still have to be written."""

    __slots__ = ("latest", "pending")

    def __init__(self) -> None:
        self.latest: dict[str, PriceUpdate] = {}
        self.pending: dict[str, PriceUpdate] = {}

    def hold(self, updates: Iterable[PriceUpdate]) -> int:
        """Take updates that cannot be sent now; returns how many."""
        latest = self.latest
        pending = self.pending
        count = 0
        for update in updates:
            latest[update[0]] = update
            pending[update[0]] = update
            count += 1
        return count

    def refused(self, updates: Iterable[PriceUpdate]) -> None:
        """Updates whose write did not land: keep those still newest for their symbol."""
        latest = self.latest
        pending = self.pending
        for update in updates:
            symbol = update[0]
            if latest.get(symbol) is update:
                pending[symbol] = update

    def take_pending(self) -> list[PriceUpdate]:
        """Everything to rewrite now, oldest symbol first; ``pending`` is left empty."""
        updates = list(self.pending.values())
        self.pending.clear()
        return updates

    def resend_latest(self) -> int:
        """Mark every symbol's newest update for rewriting (the cache lost its data)."""
        self.pending.update(self.latest)
        return len(self.pending)

    def forget(self, symbols: Iterable[str]) -> None:
        """Drop symbols no longer subscribed: nothing of theirs is rewritten."""
        for symbol in symbols:
            self.latest.pop(symbol, None)
            self.pending.pop(symbol, None)
