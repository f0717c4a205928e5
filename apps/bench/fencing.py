"""Connection fencing in the benchmark: the writer's guard armed as a leader's would be.

``market-data bench`` runs ``throughput`` and ``throughput-fenced`` one after the other;
``python -m apps.bench.fencing_ratio`` alternates the two in one run and prints the
fenced/unfenced throughput ratio (docs/leadership.md, "Fencing"). Connection
fencing adds work only when a writer connects (a name and one GET), none per frame.
"""

from __future__ import annotations

from libs.market_data.keys import KeySpace
from libs.market_data.leadership.fencing import EpochGuard, stamp
from libs.redis_client import RedisClient

__all__ = ["armed_guard"]


async def armed_guard(client: RedisClient, keys: KeySpace | None = None) -> EpochGuard:
    """A guard leading epoch 1, with that epoch's stamp written where it checks."""
    keys = keys or KeySpace()
    guard = EpochGuard(keys, "bench")
    guard.lead(1, "bench")
    await client.set(keys.epoch_key, stamp(1, "bench"))
    return guard
