"""A fixed-bucket histogram whose ``observe`` costs one C bisect and two additions.

``prometheus_client.Histogram.observe`` takes a lock and walks its buckets in Python
(about a microsecond); here the buckets are found by :func:`bisect.bisect_left` and the
per-bucket counts are made cumulative only when someone reads them. All updates happen
on one event loop thread, so no lock is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Final

__all__ = ["LATENCY_BUCKETS", "ROUND_TRIP_BUCKETS", "Histogram"]

# Exchange timestamp -> cache write: loopback is sub-millisecond, the real feed adds
# network and exchange delays of milliseconds; a backlog shows up in the seconds.
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
# One pipelined Redis batch, send to last reply.
ROUND_TRIP_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class Histogram:
    """Counts of observations per bucket (upper bounds inclusive) and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds: tuple[float, ...] = tuple(sorted(bounds))
        if not self.bounds:
            raise ValueError("a histogram needs at least one bucket bound")
        # counts[i] holds observations in (bounds[i-1], bounds[i]]; the last is +Inf.
        self.counts: list[int] = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` pairs, ending with ``(inf, count)``."""
        total = 0
        pairs: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs
