"""Typed counters of the pipeline's stages, read by ``/health``, ``/metrics`` and ``status``.

Each stage hands out a frozen snapshot; readers use attributes, never string keys, so a
renamed or removed counter is a type error and a failing metrics test, not a silent 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["EventStats", "ProcessorStats", "SinkStats"]


@dataclass(frozen=True, slots=True)
class ProcessorStats:
    """Validation: what was accepted, and what was dropped by reason."""

    quotes_accepted: int
    quotes_rejected: Mapping[str, int]  # RejectReason value -> count, reasons seen only

    @property
    def quotes_received(self) -> int:
        return self.quotes_accepted + sum(self.quotes_rejected.values())


@dataclass(frozen=True, slots=True)
class EventStats:
    """Trades and bars: accepted, and dropped by reason (RejectReason values seen only)."""

    trades_accepted: int = 0
    trades_rejected: Mapping[str, int] = field(default_factory=dict)
    bars_accepted: int = 0
    bars_rejected: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SinkStats:
    """The Redis writer: what was written, held, refused, and the connection's state."""

    redis_connected: bool
    redis_state: str
    quotes_written: int
    quotes_deferred: int
    quotes_refused: int
    pending_symbols: int
    batches_in_flight: int
    round_trips: int
    last_round_trip_ms: float | None
    reply_errors: int
    redis_outages: int
    notices_published: int
    redis_last_error: str | None
