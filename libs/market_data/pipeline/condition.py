"""The price sink's view of Redis: one state, the fault episode it is in, and why.

The one place the sink's state changes (:meth:`SinkCondition.enter`). A fault (Redis
down, refusing writes, or not answering) opens an *episode* that stays open until the
held prices have landed again; the sink then announces ``redis.recovered`` with what
the episode rewrote (docs/architecture.md, "Redis faults").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Episode", "SinkCondition", "SinkState"]

logger = logging.getLogger("libs.market_data.pipeline.sink")


class SinkState(StrEnum):
    """The sink's view of Redis; the health endpoint reports it."""

    STARTING = "starting"
    UP = "up"  # writes land
    REFUSED = "refused"  # Redis answers writes with errors; refused prices are retried
    UNRESPONSIVE = "unresponsive"  # no replies within the write timeout; updates held
    DOWN = "down"  # connection lost; reconnecting
    CLOSED = "closed"


_FAULTS = frozenset({SinkState.REFUSED, SinkState.UNRESPONSIVE, SinkState.DOWN})


@dataclass
class Episode:
    """One stretch during which writes did not land, until they land again."""

    cause: SinkState
    started_at: float = field(default_factory=time.time)
    rewritten: set[str] = field(default_factory=set)


class SinkCondition:
    """State, open episode, last error; logs each distinct fault once."""

    __slots__ = ("_logged", "episode", "last_error", "outages", "state", "write_timeout")

    def __init__(self, write_timeout: float) -> None:
        self.state = SinkState.STARTING
        self.episode: Episode | None = None
        self.last_error: str | None = None
        self.outages = 0
        self.write_timeout = write_timeout
        self._logged: set[str] = set()

    @property
    def accepting(self) -> bool:
        """Whether updates go to Redis now (else they are held)."""
        return self.state is SinkState.UP or self.state is SinkState.REFUSED

    def enter(self, state: SinkState, reason: str | None = None) -> None:
        """Move to ``state``; a fault opens an episode if none is open."""
        previous = self.state
        if state in _FAULTS:
            if self.episode is None:
                self.episode = Episode(cause=state)
                self.outages += 1
            if reason is not None:
                self.last_error = reason
            key = f"{state}: {reason}"
            if key not in self._logged:  # once per distinct error, not per batch
                self._logged.add(key)
                logger.warning("Redis %s (%s); keeping the newest price per symbol", state, reason)
        elif state is not previous:
            logger.info("Redis sink %s -> %s", previous, state)
        self.state = state

    def close_episode(self) -> Episode | None:
        """Writes land again: end the episode (if any) and return it."""
        episode, self.episode = self.episode, None
        self._logged.clear()
        self.enter(SinkState.UP)
        return episode

    def problem(self, unanswered_for: float) -> str | None:
        """Why writes are not landing right now; None if they are."""
        state = self.state
        if self.accepting and unanswered_for > self.write_timeout:
            return f"Redis not answering for {unanswered_for:.1f}s"
        if state is SinkState.UP:
            return None
        if state is SinkState.REFUSED:
            return f"Redis refuses writes: {self.last_error}"
        if state is SinkState.UNRESPONSIVE:
            return f"Redis not answering within {self.write_timeout:g}s; newest prices held"
        return f"Redis unavailable: {self.last_error}"
