"""The simulator's live sessions: who is connected, who is authenticated, what they want.

It also keeps the connection-limit slots (docs/deployment.md): Alpaca
counts sessions per account (API key) and per endpoint (feed), and a socket that died
without a closing handshake may keep its slot for a while, until the server notices.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.simulator.session import Session

__all__ = ["SessionRegistry", "Slot"]

# What the connection limit counts per: (API key, feed path).
Slot = tuple[str, str]


class SessionRegistry:
    """The open sessions and the number ever opened; queries over them."""

    def __init__(self) -> None:
        self._sessions: set[Session] = set()
        self.total_connections = 0
        # When each socket was accepted (time.monotonic()), so tests can read the pace
        # of a client's reconnects.
        self.accepted_at: list[float] = []
        # Slots of dead sockets the "server" has not noticed yet: slot -> release times
        # (time.monotonic()).
        self._held: dict[Slot, list[float]] = {}

    def add(self, session: Session) -> None:
        """A socket was accepted."""
        self._sessions.add(session)
        self.total_connections += 1
        self.accepted_at.append(time.monotonic())

    def discard(self, session: Session, hold_for: float = 0.0) -> None:
        """A session ended; its slot stays taken ``hold_for`` seconds more, if it had one."""
        self._sessions.discard(session)
        if session.slot is not None and hold_for > 0:
            self._held.setdefault(session.slot, []).append(time.monotonic() + hold_for)

    @property
    def open_count(self) -> int:
        """Sockets currently open (authenticated or not)."""
        return len(self._sessions)

    def sessions(self) -> list[Session]:
        """The open sessions, as a list that later joins and leaves do not change."""
        return list(self._sessions)

    def authenticated(self) -> list[Session]:
        """The open sessions that passed auth."""
        return [session for session in self._sessions if session.authenticated]

    def authenticated_count(self) -> int:
        """How many open sessions passed auth."""
        return sum(1 for session in self._sessions if session.authenticated)

    def slots_taken(self, slot: Slot) -> int:
        """What the connection limit counts: live sessions of ``slot`` plus held ones."""
        return sum(1 for s in self._sessions if s.slot == slot) + len(self._live_holds(slot))

    def held_count(self) -> int:
        """Slots still held by sockets that died without a closing handshake."""
        return sum(len(self._live_holds(slot)) for slot in list(self._held))

    def release_held(self) -> None:
        """Free every held slot now (the server noticed the dead sockets)."""
        self._held.clear()

    def _live_holds(self, slot: Slot) -> list[float]:
        now = time.monotonic()
        holds = [until for until in self._held.get(slot, ()) if until > now]
        if holds:
            self._held[slot] = holds
        else:
            self._held.pop(slot, None)
        return holds

    def subscribed_quotes(self) -> frozenset[str]:
        """Quote subscriptions (``"*"`` as sent) over all authenticated sessions."""
        return frozenset(
            symbol
            for session in self._sessions
            if session.authenticated
            for symbol in session.subscriptions["quotes"]
        )

    def wake_all(self) -> None:
        """Cut every data loop's sleep short, so a pacing change applies at once."""
        for session in self._sessions:
            session.wake()
