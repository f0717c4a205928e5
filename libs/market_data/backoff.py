"""How long to wait before trying again: the one backoff rule and ``Retry-After``.

Every retry loop of the project (the broker connection, the Redis sink, restoring the
saved subscriptions, the positions sync) takes its delays from :class:`BackoffPolicy`,
and every server-requested wait is read by :func:`parse_retry_after`.
"""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass

from libs.market_data import defaults

__all__ = ["BackoffPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP-date).

    ``now`` is the wall clock (epoch seconds) an HTTP-date is measured from. ``None``
    when the header is absent or unreadable; never negative, never infinite.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """``min(base * 2**(attempt-1), maximum)``, shortened by up to ``jitter`` of itself.

    Jitter only ever shortens the delay so the cap stays a cap, and instances that
    lost the same connection at the same moment do not come back in lockstep.
    """

    base: float = defaults.RECONNECT_BASE_DELAY
    maximum: float = defaults.RECONNECT_MAX_DELAY
    max_attempts: int = defaults.MAX_RECONNECT_ATTEMPTS
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
