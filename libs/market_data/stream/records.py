"""The typed records a connection hands out: its state, a snapshot of its counters, a notice.

Plain values with no behaviour, so the façade, the HTTP API and the metrics can read a
connection without reaching into it, and tests can compare them whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["ConnectionState", "ConnectionStats", "StatusNotice", "connected_notice"]


class ConnectionState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """The connection's counters at one moment (``AlpacaConnection.stats()``).

    Times are wall-clock epoch seconds. ``reconnect_causes`` counts reconnects by a
    short, bounded cause name (a metric label), sorted by name.
    """

    state: ConnectionState
    connected: bool
    url: str
    reconnect_attempts: int
    max_reconnect_attempts: int
    subscribed_symbols: int
    confirmed_symbols: int
    connections_opened: int
    frames_received: int
    malformed_messages: int
    other_messages: int
    error_frames: int
    stalls_detected: int
    last_error: str | None
    connected_since: float | None
    last_data_at: float | None
    reconnect_causes: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class StatusNotice:
    """A change of the broker connection others may want to know about.

    ``event`` is ``stream.connected``, ``stream.disconnected`` or ``stream.reconnected``;
    ``details`` its fields (docs/architecture.md lists them). The façade forwards each
    notice to the sink, which publishes it in order with the price writes.
    """

    event: str
    details: Mapping[str, Any]


def connected_notice(
    url: str, symbols: Iterable[str], disconnected_at: float | None
) -> StatusNotice:
    """``stream.reconnected`` with the gap when a loss is known (this run's or, from the
    heartbeat, a crashed run's), else ``stream.connected``."""
    details: dict[str, Any] = {"url": url, "symbols": sorted(symbols)}
    if disconnected_at is None:
        return StatusNotice("stream.connected", details)
    details["disconnected_at"] = disconnected_at
    details["gap_seconds"] = round(time.time() - disconnected_at, 3)
    return StatusNotice("stream.reconnected", details)
