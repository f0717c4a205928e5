"""What a session sees of the rest of the simulator: one object, shared by all sessions."""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.simulator.config import SimulatorConfig
from apps.simulator.faults import FaultPlan
from apps.simulator.quotes import DEFAULT_UNIVERSE, QuoteGenerator
from apps.simulator.record import WireRecord
from apps.simulator.registry import SessionRegistry
from apps.simulator.tape import TapeCache

__all__ = ["SessionContext"]


@dataclass(frozen=True, slots=True)
class SessionContext:
    """Everything of the simulator a session may read or change; shared by all sessions."""

    config: SimulatorConfig
    faults: FaultPlan
    generator: QuoteGenerator
    record: WireRecord
    registry: SessionRegistry
    # What "*" streams on the stock path (SimulatorConfig.universe_size, universe_skew).
    universe: tuple[str, ...] = DEFAULT_UNIVERSE
    tapes: TapeCache = field(default_factory=TapeCache)
