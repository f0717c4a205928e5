"""One typed snapshot of the whole stream: connection, validation and Redis writer.

``/health``, ``/metrics`` and the ``status`` command read it by attribute; the spec's
``get_connection_stats()`` dict is made from it in one place (:meth:`StreamStats.as_dict`),
so a counter renamed in a stage is a type error, not a silently missing key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from libs.market_data.pipeline.stats import EventStats, ProcessorStats, SinkStats
from libs.market_data.stream.records import ConnectionStats

__all__ = ["StreamStats"]


@dataclass(frozen=True, slots=True)
class StreamStats:
    connection: ConnectionStats
    processor: ProcessorStats
    sink: SinkStats
    events: EventStats = field(default_factory=EventStats)  # trades and bars
    crypto: ConnectionStats | None = None  # the crypto feed's connection, once it ran

    def as_dict(self) -> dict[str, Any]:
        """The flat dict of ``get_connection_stats()``: keys and order as documented."""
        c = self.connection
        p = self.processor
        return {
            "state": c.state.value,
            "connected": c.connected,
            "url": c.url,
            "reconnect_attempts": c.reconnect_attempts,
            "max_reconnect_attempts": c.max_reconnect_attempts,
            "subscribed_symbols": c.subscribed_symbols,
            "confirmed_symbols": c.confirmed_symbols,
            "connections_opened": c.connections_opened,
            "frames_received": c.frames_received,
            "quotes_received": p.quotes_received,
            "quotes_accepted": p.quotes_accepted,
            "quotes_rejected": dict(p.quotes_rejected),
            "malformed_messages": c.malformed_messages,
            "other_messages": c.other_messages,
            "error_frames": c.error_frames,
            "stalls_detected": c.stalls_detected,
            "last_error": c.last_error,
            "connected_since": c.connected_since,
            "last_data_at": c.last_data_at,
            "reconnect_causes": dict(c.reconnect_causes),
            **asdict(self.sink),
            **asdict(self.events),
            "crypto": None if self.crypto is None else _connection_dict(self.crypto),
        }


def _connection_dict(c: ConnectionStats) -> dict[str, Any]:
    values = {f.name: getattr(c, f.name) for f in fields(c)}  # asdict cannot copy a mappingproxy
    return {**values, "state": c.state.value, "reconnect_causes": dict(c.reconnect_causes)}
