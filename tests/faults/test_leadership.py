"""Leader election under faults (docs/leadership.md): ``market-data serve`` processes with
``LEADER_ELECTION=redis`` on a real redis-server and the simulator (connection limit 1
unless a test says otherwise).

- kill -9 the leader while streaming: the standby takes over, resubscribes everything,
  and the cache converges on the latest quotes;
- SIGSTOP the leader past its lease, let the standby take over, SIGCONT: no write of the
  old epoch lands after the takeover (the cache, every event a real subscriber got, and
  Redis's own MONITOR record);
- Redis restarted under the leader: one leader again, streaming, epochs still rising;
- SIGTERM: the standby takes over at once;
- a standby's subscribe and unsubscribe answer as the leader's (201, 409).
"""

from __future__ import annotations

import asyncio
import functools
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from apps.simulator import AlpacaSimulator
from libs.redis_embedded import EmbeddedRedis
from tests.faults.harness import RATE, SYMBOLS, Harness
from tests.faults.leaders import Group, cached_records
from tests.fixtures.monitor import CommandLog, monitor
from tests.helpers import eventually, listen, status_notices

__all__: list[str] = []


@pytest.fixture
async def group(harness: Harness, tmp_path: Path) -> AsyncIterator[Group]:
    members = Group(harness, tmp_path)
    try:
        yield members
    finally:
        await members.stop()


def _wrote(log: CommandLog, epoch: str) -> bool:
    return any(p["epoch"] == epoch for _, p in log.price_writes())


def _epochs(harness: Harness) -> set[str]:
    return {str(r["epoch"]) for r in cached_records(harness, SYMBOLS).values() if r is not None}


@pytest.mark.timeout(90)
async def test_kill9_leader_standby_takes_over_and_converges(
    harness: Harness, group: Group
) -> None:
    first, second = await group.leader_and_standby()
    await group.stream(first)
    old_epoch = (await group.wait(first, "leader"))["leadership"]["epoch"]
    async with status_notices(harness.redis_server.params) as notices:
        first.process.kill()
        await asyncio.to_thread(first.process.wait, 10)
        body = await group.wait(second, "leader")
        await eventually(
            lambda: any(n["event_type"] == "leader.changed" for n in notices), what="notice"
        )
    new_epoch = body["leadership"]["epoch"]
    assert new_epoch > old_epoch
    await eventually(
        lambda: harness.sim.subscribed_quotes == set(SYMBOLS), timeout=20, what="resubscribed"
    )
    await eventually(lambda: _epochs(harness) == {str(new_epoch)}, timeout=10, what="new epoch")
    assert await harness.lost() == 0
    changed = next(n for n in notices if n["event_type"] == "leader.changed")
    assert changed["old_epoch"] == old_epoch and changed["new_epoch"] == new_epoch
    assert changed["old_instance"] == "a" and changed["new_instance"] == "b"
    assert changed["gap_seconds"] is not None


@pytest.fixture
async def unlimited(
    simulator_factory: Callable[..., Any], redis_factory: Callable[..., EmbeddedRedis]
) -> Harness:
    """A harness whose simulator takes any number of connections: a SIGSTOPped leader
    keeps its socket (and its slot) open, and this test is about fencing, not 406."""
    sim: AlpacaSimulator = await simulator_factory(connection_limit=None)
    return Harness(sim=sim, redis_server=redis_factory())


@pytest.mark.timeout(120)
async def test_sigstop_past_the_lease_then_sigcont_writes_nothing_of_the_old_epoch(
    unlimited: Harness, tmp_path: Path
) -> None:
    harness = unlimited
    group = Group(harness, tmp_path)
    events: list[dict[str, Any]] = []
    try:
        first, second = await group.leader_and_standby()
        await group.stream(first)
        old = (await group.wait(first, "leader"))["leadership"]["epoch"]
        async with (
            monitor(harness.redis_server.params) as log,
            listen(
                harness.redis_server.params,
                lambda _, event: events.append(event),
                patterns=["price.updated.*"],
            ),
        ):
            first.signal(signal.SIGSTOP)
            new = (await group.wait(second, "leader"))["leadership"]["epoch"]
            await eventually(
                lambda: any(e["epoch"] == str(new) for e in events), timeout=10, what="new events"
            )
            before = (await second.health() or {})["stats"]["quotes_written"]
            first.signal(signal.SIGCONT)
            # The old leader runs again: it reads what its socket buffered, tries to write
            # it, finds itself fenced, and steps down.
            body = await group.wait(first, "standby", healthy=False)
            await eventually(
                lambda: sum(1 for e in events if e["epoch"] == str(new)) > 50,
                timeout=10,
                what="the new leader streaming on",
            )
            harness.sim.set_rate(0.0)
        after = (await second.health() or {})["stats"]["quotes_written"]
        assert after > before
        assert body["leadership"]["leader_id"] in (None, "b")
        # Every write of the new epoch, and nothing of the old one after its first.
        writes = [
            (c[0].upper(), c[2])
            for c in log.commands
            if len(c) > 2
            and c[0].upper() in ("SET", "PUBLISH")
            and c[1].startswith(("price:", "price.updated."))
        ]
        first_new = next(
            i for i, (_, payload) in enumerate(writes) if f'"epoch":"{new}"' in payload
        )
        late = [w for w in writes[first_new:] if f'"epoch":"{old}"' in w[1]]
        assert late == [], f"{len(late)} writes of epoch {old} after epoch {new} began"
        first_event = next(i for i, e in enumerate(events) if e["epoch"] == str(new))
        assert [e for e in events[first_event:] if e["epoch"] == str(old)] == []
        assert _epochs(harness) == {str(new)}
        assert (await group.roles()) == {"a": "standby", "b": "leader"}
    finally:
        await group.stop()


@pytest.mark.timeout(90)
async def test_redis_restart_during_leadership(harness: Harness, group: Group) -> None:
    first, _ = await group.leader_and_standby()
    await group.stream(first)
    old = (await group.wait(first, "leader"))["leadership"]["epoch"]
    await asyncio.to_thread(harness.redis_server.kill)
    await asyncio.to_thread(harness.redis_server.restart)  # empty: no persistence

    async def one_leader() -> dict[str, Any]:
        while True:
            roles = await group.roles()
            leaders = [m for m in group.members if roles.get(m.name) == "leader"]
            if len(leaders) == 1 and sorted(map(str, roles.values())) == ["leader", "standby"]:
                body = await group.wait(leaders[0], "leader", within=10)
                return body
            await asyncio.sleep(0.05)

    body = await asyncio.wait_for(one_leader(), 30)
    new = body["leadership"]["epoch"]
    # The counter was lost with the data; the instances remembered the epoch.
    assert new > old
    await eventually(
        lambda: harness.sim.subscribed_quotes == set(SYMBOLS), timeout=20, what="resubscribed"
    )
    await eventually(lambda: harness.saved_subscriptions() == set(SYMBOLS), what="saved again")
    await eventually(lambda: _epochs(harness) == {str(new)}, timeout=10, what="streaming again")
    assert await harness.lost() == 0


@pytest.mark.timeout(90)
async def test_sigterm_hands_over_at_once(harness: Harness, group: Group) -> None:
    first, second = await group.leader_and_standby()
    await group.stream(first)
    async with status_notices(harness.redis_server.params) as notices:
        first.process.terminate()
        code = await asyncio.to_thread(first.process.wait, 15)
        body = await group.wait(second, "leader")
        await eventually(
            lambda: (
                [n["event_type"] for n in notices if n["event_type"].startswith("leader.")]
                == ["leader.released", "leader.changed"]
            ),
            what="released, then changed",
        )
    assert code == 0
    released = next(n for n in notices if n["event_type"] == "leader.released")
    assert released["instance"] == "a"
    await eventually(
        lambda: _epochs(harness) == {str(body["leadership"]["epoch"])}, timeout=10, what="new"
    )
    assert await harness.lost() == 0


@pytest.fixture
async def limited(
    simulator_factory: Callable[..., Any], redis_factory: Callable[..., EmbeddedRedis]
) -> Harness:
    """A simulator that refuses a fifth symbol per session (Alpaca's 405)."""
    sim: AlpacaSimulator = await simulator_factory(symbol_limit=4)
    return Harness(sim=sim, redis_server=redis_factory())


@pytest.mark.timeout(90)
async def test_standby_subscribe_and_unsubscribe_answer_as_the_leader(
    limited: Harness, tmp_path: Path
) -> None:
    harness = limited
    group = Group(harness, tmp_path)
    try:
        first, second = await group.leader_and_standby()
        reply = await second.http.post("/api/v1/subscribe", json={"symbols": SYMBOLS[:3]})
        assert reply.status_code == 201, reply.text
        assert reply.json()["total_subscriptions"] == 3
        # 201 means the broker acknowledged: the leader's session has them already.
        assert set(SYMBOLS[:3]) <= harness.sim.subscribed_quotes
        assert (await second.http.get("/api/v1/subscriptions")).json()["symbols"] == sorted(
            SYMBOLS[:3]
        )
        # Two more than the limit allows: refused as on the leader, nothing of it added.
        refused = await second.http.post("/api/v1/subscribe", json={"symbols": ["NFLX", "AMD"]})
        on_leader = await first.http.post("/api/v1/subscribe", json={"symbols": ["NFLX", "AMD"]})
        assert refused.status_code == on_leader.status_code == 409, refused.text
        assert refused.json()["refused_symbols"] == on_leader.json()["refused_symbols"]
        assert refused.json()["code"] == "subscription_refused"
        assert "NFLX" not in harness.sim.subscribed_quotes
        gone = await second.http.delete(f"/api/v1/subscribe/{SYMBOLS[0]}")
        assert gone.status_code == 200, gone.text
        await eventually(
            lambda: SYMBOLS[0] not in harness.sim.subscribed_quotes, what="unsubscribed"
        )
        missing = await second.http.delete("/api/v1/subscribe/NFLX")
        assert missing.status_code == 404
        await eventually(lambda: harness.saved_subscriptions() == set(SYMBOLS[1:3]), what="saved")
    finally:
        await group.stop()


@pytest.mark.timeout(240)
async def test_split_brain_two_instances_started_at_once_20_times(harness: Harness) -> None:
    """Both race for the lease at the same instant (in one event loop, so their Redis
    commands interleave for real); every round exactly one leads, and every price
    write of the round carries the leader's epoch."""
    harness.sim.set_rate(RATE, batch_size=5)
    leaders: list[str] = []
    for round_ in range(20):
        async with monitor(harness.redis_server.params) as log:
            pair = await asyncio.gather(
                *(
                    harness.start(leader_election="redis", instance_id=f"{name}{round_}")
                    for name in ("a", "b")
                )
            )
            seen: set[tuple[str, ...]] = set()
            deadline = time.monotonic() + 20
            while True:
                bodies = [(await r.health())[1] for r in pair]
                roles = tuple(sorted(b["role"] for b in bodies))
                seen.add(roles)
                assert roles.count("leader") <= 1, bodies
                if roles == ("leader", "standby") and any(
                    b["role"] == "leader" and b["status"] == "healthy" for b in bodies
                ):
                    break
                assert time.monotonic() < deadline, bodies
                await asyncio.sleep(0.02)
            if round_ == 0:
                # Once a leader is there: before, a standby rightly answers 503 no_leader.
                reply = await pair[0].http.post("/api/v1/subscribe", json={"symbols": SYMBOLS})
                assert reply.status_code == 201, reply.text
            leader = next(b for b in bodies if b["role"] == "leader")
            epoch = str(leader["leadership"]["epoch"])
            await eventually(
                functools.partial(_wrote, log, epoch), timeout=10, what="the leader writing"
            )
            # The standby first: stopped together, it could hear the leader's release
            # and lead (rightly) for a moment, which would blur the round's epochs.
            leading = next(r for r, b in zip(pair, bodies, strict=True) if b["role"] == "leader")
            await harness.stop(next(r for r in pair if r is not leading))
            await harness.stop(leading)
        written = {p["epoch"] for _, p in log.price_writes()}
        assert written == {epoch}, (round_, written)
        leaders.append(epoch)
    assert len(set(leaders)) == 20  # a new epoch per round, never reused
