"""The data clock: notices a connection that stays open but delivers no market data.

Keepalive pings prove the socket is alive, not that the feed is: a server can keep a
session open and send nothing (docs/concepts/websocket-streaming.md). While symbols are
subscribed, silence longer than the limit counts as a stall and the connection replaces
the socket. The limit doubles each time a fresh connection is silent too (a closed
market, not a broken feed), up to :data:`MAX_STALL_TIMEOUT`, and is back at its base as
soon as data flows again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

from libs.market_data.exceptions import StreamConnectionError

__all__ = ["MAX_STALL_TIMEOUT", "DataClock", "StallDetected", "backed_off"]

MAX_STALL_TIMEOUT: Final = 3600.0
# Checks come at a quarter of the limit, so a stall is seen at most 25% late, but at
# least every few seconds so a long limit does not make a late check later still.
_MAX_CHECK_INTERVAL: Final = 5.0


def backed_off(limit: float) -> float:
    """The limit after a socket stayed silent for ``limit``: doubled, up to the cap, but a
    limit configured above the cap is kept, never lowered to it."""
    return min(limit * 2, max(MAX_STALL_TIMEOUT, limit))


class StallDetected(StreamConnectionError):
    """The data clock closed a silent socket; the session ended for that reason.

    A type of its own so the run loop recognises a stall by what it is, never by text.
    """

    def __init__(self, silent: float, next_limit: float) -> None:
        self.silent = silent
        self.next_limit = next_limit
        super().__init__(f"no market data for {silent:.0f}s while subscribed")


class DataClock:
    """Stall detection with an adaptive limit; one per connection, across its sockets.

    The connection records the wall clock of the last data frame in its own
    ``last_data_at`` (one store per frame, nothing more on the hot path); the clock reads
    it through a callable and compares values, so "data came since the last stall" needs
    no extra bookkeeping per frame.
    """

    def __init__(self, stall_timeout: float | None) -> None:
        self.stall_timeout = stall_timeout
        self.stalls_detected = 0
        self._backed_off: float | None = None  # the limit after the last stall
        self._data_at_stall: float | None = None  # last_data_at when that stall happened

    @property
    def enabled(self) -> bool:
        """``stall_timeout`` of ``None`` or ``0`` turns the clock off."""
        return bool(self.stall_timeout)

    def limit(self, last_data_at: float | None) -> float | None:
        """The silence the next socket is allowed, given the last data frame's time."""
        if not self.stall_timeout:
            return None
        if self._backed_off is None or last_data_at != self._data_at_stall:
            return self.stall_timeout  # never stalled, or data came after the last stall
        return self._backed_off

    async def watch(
        self, last_data_at: Callable[[], float | None], subscribed: Callable[[], bool]
    ) -> StallDetected:
        """Return once data stayed away for the limit while ``subscribed()``; never otherwise.

        Call it once per socket, after the session is established: the limit is taken at
        the start and applies to this socket only.
        """
        seen = last_data_at()
        limit = self.limit(seen)
        if limit is None:
            raise RuntimeError("the data clock is off (stall_timeout is None or 0)")
        since = time.monotonic()
        while True:
            await asyncio.sleep(min(limit / 4, _MAX_CHECK_INTERVAL))
            latest = last_data_at()
            if latest != seen or not subscribed():
                # Data came, or nothing is subscribed (silence is then expected): the
                # silence starts over from now.
                since, seen = time.monotonic(), latest
                continue
            silent = time.monotonic() - since
            if silent >= limit:
                self.stalls_detected += 1
                self._backed_off = backed_off(limit)
                self._data_at_stall = seen
                return StallDetected(silent, self._backed_off)
