"""Settings of the Alpaca-protocol simulator."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_PORT", "SimulatorConfig"]

DEFAULT_PORT = 8765


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator listens, whom it lets in and how much data it emits.

    ``rate`` is the total number of generated quotes per second per session, spread
    round-robin over the session's subscribed symbols; ``0`` emits nothing on its own
    (tests then inject quotes). Frames carry at most ``batch_size`` quotes: up to 50
    frames a second each quote goes alone, above that frames fill up (``rate / 50``
    quotes each, capped at ``batch_size``), as a busy feed batches under load.
    ``connection_limit`` (authenticated sessions at once) and ``symbol_limit``
    (distinct symbols over all channels of one session, ``"*"`` counting as one)
    model the plan limits of the real service (406 and 405); ``None`` means
    unlimited. The connection limit counts per API key and feed, as Alpaca's does;
    ``connection_release_delay`` keeps the slot of a socket that died without a
    closing handshake (a crash, a network drop) taken that many seconds more, as the
    real server is slow to notice a dead peer. ``port=0`` picks a free port.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str = "sim-key"
    secret_key: str = "sim-secret"
    rate: float = 50.0
    batch_size: int = 10
    seed: int | None = None
    connection_limit: int | None = 1
    connection_release_delay: float = 0.0
    # What "*" streams: 0 = the ten default tickers; N = those and S0010... up to N
    # symbols. universe_skew > 0 makes their activity Zipf-like (symbol k comes up in
    # proportion to 1/k**skew), as a real tape: apps/simulator/market.py.
    universe_size: int = 0
    universe_skew: float = 0.0
    symbol_limit: int | None = None
    auth_timeout: float = 10.0
    # Alpaca offers permessage-deflate; a benchmark may want the bytes uncompressed.
    compression: bool = True
    # Server-side keepalive like Alpaca's (it expects a pong within ~20 s).
    ping_interval: float | None = 20.0
    # Open positions GET /v2/positions reports: mappings with symbol, qty (negative or
    # side "short" for a short) and avg_entry_price; see apps.simulator.rest.
    positions: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be within 0..65535, got {self.port}")
        if not math.isfinite(self.rate) or self.rate < 0:
            raise ValueError(f"rate must be a finite number >= 0, got {self.rate}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.connection_limit is not None and self.connection_limit < 1:
            raise ValueError(f"connection_limit must be >= 1 or None, got {self.connection_limit}")
        delay = self.connection_release_delay
        if not math.isfinite(delay) or delay < 0:
            raise ValueError(f"connection_release_delay must be a finite number >= 0, got {delay}")
        if not 0 <= self.universe_size <= 1_000_000:
            raise ValueError(f"universe_size must be within 0..1000000, got {self.universe_size}")
        skew = self.universe_skew
        if not math.isfinite(skew) or skew < 0:
            raise ValueError(f"universe_skew must be a finite number >= 0, got {skew}")
        if self.symbol_limit is not None and self.symbol_limit < 1:
            raise ValueError(f"symbol_limit must be >= 1 or None, got {self.symbol_limit}")
        if not self.auth_timeout > 0:
            raise ValueError(f"auth_timeout must be > 0, got {self.auth_timeout}")
        if self.ping_interval is not None and not self.ping_interval > 0:
            raise ValueError(f"ping_interval must be > 0 or None, got {self.ping_interval}")
