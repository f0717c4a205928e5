"""Figures both kinds of scenario share: latency percentiles and the final drain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from apps.bench.processes import Peer

__all__ = ["drain", "latency_figures", "percentile"]


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values (nearest rank)."""
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_figures(latencies_ns: Sequence[int]) -> tuple[float | None, float | None, float | None]:
    """p50, p99 and max in milliseconds of sorted latencies in nanoseconds."""
    if not latencies_ns:
        return None, None, None
    return (
        percentile(latencies_ns, 0.50) / 1e6,
        percentile(latencies_ns, 0.99) / 1e6,
        latencies_ns[-1] / 1e6,
    )


async def drain(
    subscriber: Peer, sim: Peer, sent_before: int, received_before: int, patience: float
) -> tuple[int, int, list[int]]:
    """After the rate dropped to 0: sent, received (since the ``_before`` counts) and the
    latency samples, once everything sent has arrived, or nothing did for ``patience``
    seconds. A frame the simulator was still writing (the service behind, the socket
    full) counts as sent once its write completes, so the sent count is read again too."""
    last = (-1, -1)
    quiet_since = time.monotonic()
    while True:
        sent = (await sim.ask(("stats",)))[1] - sent_before
        received = (await subscriber.ask(("count",)))[1] - received_before
        if (sent, received) != last:
            last, quiet_since = (sent, received), time.monotonic()
        elif received >= sent or time.monotonic() - quiet_since > patience:
            break  # the same figures twice in a row: nothing was still on its way
        await asyncio.sleep(0.1)
    report = await subscriber.ask(("report",))
    return sent, report[1] - received_before, report[4]
