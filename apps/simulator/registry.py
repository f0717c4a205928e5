"""The simulator's live sessions: who is connected, who is authenticated, what they want."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.simulator.session import Session

__all__ = ["SessionRegistry"]


class SessionRegistry:
    """The open sessions and the number ever opened; queries over them."""

    def __init__(self) -> None:
        self._sessions: set[Session] = set()
        self.total_connections = 0

    def add(self, session: Session) -> None:
        """A socket was accepted."""
        self._sessions.add(session)
        self.total_connections += 1

    def discard(self, session: Session) -> None:
        """A session ended."""
        self._sessions.discard(session)

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
        """How many open sessions passed auth (what the connection limit counts)."""
        return sum(1 for session in self._sessions if session.authenticated)

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
