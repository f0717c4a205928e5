"""A takeover while the broker still holds the old leader's socket (docs/leadership.md,
"A 406 right after a takeover"): ``market-data serve`` processes with
``LEADER_ELECTION=redis`` on a real redis-server and the simulator, one connection per
key, whose slot outlives a socket that died without a closing handshake by
``connection_release_delay`` seconds, as Alpaca's does (for up to ~90 s).

The leader freezes (SIGSTOP): its socket stays open and holds the slot, so the standby
that takes over is answered 406 for certain. Then the frozen leader is killed (SIGKILL):
the slot stays held for the release delay, and the new leader, retrying on its short
takeover schedule, streams soon after. The normal backoff is set to 30 s here: without
the takeover schedule the first retry after the 406 would come 24 to 30 s later (20 %
jitter), far past this test's deadline, so the test fails on a loaded machine only if
the fast path is gone.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest

from apps.simulator import AlpacaSimulator
from libs.redis_embedded import EmbeddedRedis
from tests.faults.harness import SYMBOLS, Harness
from tests.faults.leaders import Group, Member, cached_records
from tests.helpers import eventually, listen

__all__: list[str] = []

RELEASE_DELAY: Final = 1.5  # seconds the simulator keeps a dead socket's slot
NORMAL_BASE_DELAY: Final = 30.0  # RECONNECT_BASE_DELAY: the normal first wait, 24-30 s
# Seconds from the kill to the new epoch's first price the test waits for: a safety net
# for a loaded machine (it takes about the release delay plus one fast step), well under
# the normal policy's first wait, which a lost fast path would have to sit out.
WITHIN: Final = 15.0


@pytest.fixture
async def slow_release(
    simulator_factory: Callable[..., Any], redis_factory: Callable[..., EmbeddedRedis]
) -> Harness:
    sim: AlpacaSimulator = await simulator_factory(
        connection_limit=1, connection_release_delay=RELEASE_DELAY
    )
    return Harness(sim=sim, redis_server=redis_factory())


async def _refusals(member: Member) -> int:
    """406 answers the member's stream met (its reconnect causes in /health)."""
    body = await member.health()
    if body is None:
        return 0
    return int(body["stats"]["reconnect_causes"].get("alpaca_406", 0))


@pytest.mark.timeout(120)
async def test_a_new_leader_meets_the_held_slot_and_streams_soon_after_it_frees(
    slow_release: Harness, tmp_path: Path
) -> None:
    harness = slow_release
    group = Group(
        harness,
        tmp_path,
        env={"RECONNECT_BASE_DELAY": str(NORMAL_BASE_DELAY), "RECONNECT_MAX_DELAY": "300"},
    )
    arrivals: list[tuple[float, dict[str, Any]]] = []
    try:
        first, second = await group.leader_and_standby()
        await group.stream(first)
        async with listen(
            harness.redis_server.params,
            lambda _, event: arrivals.append((time.monotonic(), event)),
            patterns=["price.updated.*"],
        ):
            first.signal(signal.SIGSTOP)  # frozen: its socket, and the slot, stay
            body = await group.wait(second, "leader", healthy=False)
            new = str(body["leadership"]["epoch"])
            deadline = time.monotonic() + 20.0
            while await _refusals(second) < 1:
                assert time.monotonic() < deadline, f"no 406 met\n{group.logs()}"
                await asyncio.sleep(0.01)
            first.process.kill()  # the socket dies without a close: held RELEASE_DELAY
            killed = time.monotonic()
            await asyncio.to_thread(first.process.wait, 10)
            await eventually(
                lambda: any(e["epoch"] == new for _, e in arrivals),
                timeout=WITHIN,
                what="the new leader streaming (the 406 retried on the takeover schedule)",
            )
        took = next(t for t, e in arrivals if e["epoch"] == new) - killed
        refused = await _refusals(second)
        print(f"\ntakeover: first price {took:.2f}s after the kill, {refused} x 406 met")
        # Bounded: the takeover schedule has four steps; each 406 is one of them.
        assert 1 <= refused <= 4, group.logs()
        await eventually(lambda: harness.sim.subscribed_quotes == set(SYMBOLS), what="resubscribed")
        await eventually(
            lambda: (
                {str(r["epoch"]) for r in cached_records(harness, SYMBOLS).values() if r} == {new}
            ),
            timeout=10,
            what="the cache in the new epoch",
        )
    finally:
        await group.stop()
