"""Reconnect delays: exponential, capped, with jitter inside the cap."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["BackoffPolicy"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """``min(base * 2**(attempt-1), maximum)``, shortened by up to ``jitter`` of itself.

    Jitter only ever shortens the delay so the cap stays a cap, and instances that
    lost the same connection at the same moment do not come back in lockstep.
    """

    base: float = 5.0
    maximum: float = 300.0
    max_attempts: int = 10
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base <= 0 or self.maximum < self.base:
            raise ValueError("backoff needs 0 < base <= maximum")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def ceiling(self, attempt: int) -> float:
        """The delay before jitter for the ``attempt``-th consecutive failure (from 1)."""
        exponent = min(max(attempt, 1) - 1, 64)
        return float(min(self.base * 2.0**exponent, self.maximum))

    def delay(self, attempt: int) -> float:
        """The delay to wait before reconnect attempt ``attempt``."""
        ceiling = self.ceiling(attempt)
        return ceiling * (1.0 - self.jitter * random.random())
