"""What one Alpaca connection reports: its state machine, its counters, its notices.

:class:`ConnectionStatus` is the base of
:class:`~libs.market_data.stream.connection.AlpacaConnection` (through
:class:`~libs.market_data.stream.reader.FrameReader`): the one place the state changes
(every transition logged), the counters the read loop bumps, the typed snapshot
``/health`` and the metrics read, and the delivery of status notices. The socket loop
itself stays in ``connection``, the read loop in ``reader``; the counters are plain
attributes of the connection, so the per-frame path touches them without a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import MappingProxyType

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.stream.clock import DataClock
from libs.market_data.stream.records import ConnectionState, ConnectionStats, StatusNotice
from libs.market_data.stream.session import StreamSession

__all__ = ["ConnectionStatus"]

# The connection's logger: these are the connection's transitions and failures.
logger = logging.getLogger("libs.market_data.stream.connection")


class ConnectionStatus:
    """State, counters and notices of one reconnecting market-data connection."""

    def __init__(
        self,
        url: str,
        session: StreamSession,
        clock: DataClock,
        backoff: BackoffPolicy,
        on_notice: Callable[[StatusNotice], None] | None,
    ) -> None:
        self.url = url
        self._session = session
        self.clock = clock
        self.backoff = backoff
        self._on_notice = on_notice
        self._state = ConnectionState.IDLE
        self.reconnect_attempts = 0
        self.last_error: str | None = None
        self.connections_opened = 0
        self.frames_received = 0
        self.malformed_messages = 0
        self.other_messages = 0
        # reconnects by short cause ("closed", "stall", "alpaca_406", ...): a fixed set
        # of names, so a metric labelled with them stays small.
        self.reconnect_causes: dict[str, int] = {}
        self.connected_since: float | None = None  # wall clock
        self.last_data_at: float | None = None  # wall clock of the last market data
        self.disconnected_at: float | None = None  # wall clock of the last lost session

    @property
    def state(self) -> ConnectionState:
        return self._state

    def is_connected(self) -> bool:
        """True from the end of the handshake until the socket starts to close."""
        return self._state is ConnectionState.CONNECTED

    def stats(self) -> ConnectionStats:
        """A snapshot of the counters, for ``/health``, metrics and operators."""
        return ConnectionStats(
            state=self._state,
            connected=self.is_connected(),
            url=self.url,
            reconnect_attempts=self.reconnect_attempts,
            max_reconnect_attempts=self.backoff.max_attempts,
            subscribed_symbols=len(self._session.desired),
            confirmed_symbols=len(self._session.confirmed),
            connections_opened=self.connections_opened,
            frames_received=self.frames_received,
            malformed_messages=self.malformed_messages,
            other_messages=self.other_messages,
            error_frames=self._session.error_frames,
            stalls_detected=self.clock.stalls_detected,
            last_error=self.last_error,
            connected_since=self.connected_since,
            last_data_at=self.last_data_at,
            reconnect_causes=MappingProxyType(dict(sorted(self.reconnect_causes.items()))),
        )

    def _set_state(self, state: ConnectionState) -> None:
        """The one place the state changes, so every transition is logged."""
        previous = self._state
        if state is previous:
            return
        self._state = state
        logger.info(
            "market data stream state %s -> %s",
            previous.value,
            state.value,
            extra={"state": state.value, "previous_state": previous.value},
        )

    def _fail(self, reason: str) -> None:
        self._set_state(ConnectionState.FAILED)
        self.last_error = reason
        logger.error("market data stream failed: %s", reason)

    def _reconnecting(self, cause: str, delay: float) -> None:
        """A lost session is retried in ``delay`` seconds: the state, its count, one line."""
        self._set_state(ConnectionState.RECONNECTING)
        self.reconnect_causes[cause] = self.reconnect_causes.get(cause, 0) + 1
        logger.warning(
            "market data stream lost (%s); reconnect attempt %d/%d in %.2fs",
            self.last_error,
            self.reconnect_attempts,
            self.backoff.max_attempts,
            delay,
            extra={"cause": cause, "attempt": self.reconnect_attempts, "delay": delay},
        )

    def _notice(self, notice: StatusNotice) -> None:
        if self._on_notice is not None:
            try:
                self._on_notice(notice)
            except Exception:  # a notice must never take the session down
                logger.exception("status notice %s failed", notice.event)
