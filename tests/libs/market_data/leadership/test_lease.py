"""The lease state machine without Redis: every transition from answers and a given clock."""

from __future__ import annotations

import pytest

from libs.market_data.leadership.lease import (
    Acquired,
    Fenced,
    HeldBy,
    Holder,
    Lease,
    Lost,
    Released,
    ReleaseSeen,
    Renewed,
    Role,
    Step,
    Tick,
    Unreachable,
)

TTL = 1.5


def leader(now: float = 100.0, epoch: int = 3) -> Lease:
    lease = Lease("me", TTL)
    change = lease.handle(Acquired(epoch, sent_at=now), now)
    assert change is not None and change.new is Role.LEADER
    return lease


def test_off_is_single_and_never_changes() -> None:
    lease = Lease("me", TTL, enabled=False)
    assert lease.role is Role.SINGLE
    assert lease.next_step(0.0)[0] is Step.NONE
    for answer in (Acquired(1, 0.0), Lost(), Fenced(), Tick()):
        assert lease.handle(answer, 0.0) is None
    assert lease.role is Role.SINGLE and lease.leader_live(0.0)


def test_a_standby_tries_at_once_then_at_expiry_of_the_held_lease() -> None:
    lease = Lease("me", TTL)
    assert lease.next_step(0.0) == (Step.ACQUIRE, 0.0)
    assert lease.handle(HeldBy(Holder("other", 7), remaining=0.2), 10.0) is None
    step, wait = lease.next_step(10.0)
    assert step is Step.ACQUIRE and wait == pytest.approx(0.205)
    assert lease.known_epoch == 7 and lease.leader_live(10.1)
    assert not lease.leader_live(10.3)  # its lease ran out as far as we know
    # A long lease: still looks at least every third of the TTL.
    lease.handle(HeldBy(Holder("other", 7), remaining=60.0), 20.0)
    assert lease.next_step(20.0)[1] == pytest.approx(TTL / 3)


def test_acquired_makes_a_leader_with_the_previous_holder_named() -> None:
    lease = Lease("me", TTL)
    lease.handle(HeldBy(Holder("other", 4), remaining=0.1), 0.0)
    change = lease.handle(Acquired(5, sent_at=1.0), 1.01)
    assert change is not None
    assert (change.old, change.new, change.epoch) == (Role.STANDBY, Role.LEADER, 5)
    assert change.previous == Holder("other", 4)
    assert lease.epoch == 5 and lease.holder == Holder("me", 5)


def test_a_leader_renews_every_third_of_the_ttl_counted_from_sending() -> None:
    lease = leader(now=100.0)
    assert lease.next_step(100.0)[0] is Step.RENEW
    assert lease.next_step(100.0)[1] == pytest.approx(0.5)
    lease.handle(Renewed(sent_at=100.5), 100.6)
    assert lease.next_step(100.6)[1] == pytest.approx(0.4)
    assert lease.valid(101.99) and not lease.valid(102.0)  # 100.5 + ttl
    assert lease.remaining(101.0) == pytest.approx(1.0)


def test_renewal_failures_retry_until_the_lease_runs_out_then_step_down() -> None:
    lease = leader(now=100.0)
    assert lease.handle(Unreachable("down"), 100.5) is None
    assert lease.role is Role.LEADER
    assert lease.next_step(100.5)[1] == pytest.approx(TTL / 10)
    change = lease.handle(Unreachable("down"), 101.5)
    assert change is not None and change.new is Role.STANDBY
    assert "Redis unreachable" in change.reason and lease.last_error == "down"


def test_a_leader_past_its_lease_by_its_own_clock_steps_down_on_a_tick() -> None:
    lease = leader(now=100.0)
    assert lease.handle(Tick(), 101.4) is None
    change = lease.handle(Tick(), 101.5)
    assert change is not None and change.new is Role.STANDBY
    assert lease.next_step(101.5) == (Step.ACQUIRE, 0.0)  # looks again at once


@pytest.mark.parametrize("answer", [Lost(), Fenced(), Released()])
def test_lost_fenced_or_released_step_down(answer: Lost | Fenced | Released) -> None:
    lease = leader(epoch=9)
    change = lease.handle(answer, 100.1)
    assert change is not None and (change.old, change.new) == (Role.LEADER, Role.STANDBY)
    assert change.epoch == 9  # the last epoch known
    assert lease.epoch is None and not lease.valid(100.1)
    # The next acquisition must raise the epoch past the one we held.
    assert lease.known_epoch == 9


def test_answers_that_do_not_apply_change_nothing() -> None:
    lease = Lease("me", TTL)
    for answer in (Lost(), Fenced(), Released(), Renewed(0.0), Tick()):
        assert lease.handle(answer, 1.0) is None
        assert lease.role is Role.STANDBY
    lease = leader()
    assert lease.handle(ReleaseSeen(), 100.1) is None  # for standbys only
    assert lease.role is Role.LEADER


def test_a_release_seen_wakes_a_standby_at_once() -> None:
    lease = Lease("me", TTL)
    lease.handle(HeldBy(Holder("other", 2), remaining=1.4), 0.0)
    assert lease.next_step(0.1)[1] > 0
    lease.handle(ReleaseSeen(), 0.1)
    assert lease.next_step(0.1) == (Step.ACQUIRE, 0.0)
    assert lease.holder is None and not lease.leader_live(0.1)


def test_an_unreachable_standby_looks_again_after_a_third_of_the_ttl() -> None:
    lease = Lease("me", TTL)
    assert lease.handle(Unreachable("refused"), 5.0) is None
    assert lease.next_step(5.0)[1] == pytest.approx(TTL / 3)
    assert lease.last_error == "refused"


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl"):
        Lease("me", 0.0)
