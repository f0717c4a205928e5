"""The fault plan without a socket or a loop: pacing snapshots, queued faults, validation."""

from __future__ import annotations

import dataclasses

import pytest

from apps.simulator.faults import FaultPlan, Pacing, RestFailure


class Calls:
    """Counts pacing-change notifications."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def plan(calls: Calls) -> FaultPlan:
    return FaultPlan(50.0, 10, on_pacing_change=calls)


def test_pacing_starts_from_the_constructor(plan: FaultPlan, calls: Calls) -> None:
    assert plan.pacing == Pacing(rate=50.0, batch_size=10, paused=False, epoch=0)
    assert plan.pacing.streaming
    assert calls.count == 0
    assert not FaultPlan(0, 10).pacing.streaming


def test_set_rate_keeps_the_batch_size_unless_given(plan: FaultPlan, calls: Calls) -> None:
    plan.set_rate(200)
    assert plan.pacing == Pacing(rate=200.0, batch_size=10, paused=False, epoch=1)
    assert isinstance(plan.pacing.rate, float)
    plan.set_rate(0, batch_size=3)
    assert plan.pacing == Pacing(rate=0.0, batch_size=3, paused=False, epoch=2)
    assert not plan.pacing.streaming
    assert calls.count == 2


@pytest.mark.parametrize(
    ("rate", "batch_size", "problem"),
    [
        (-1, None, "rate"),
        (float("nan"), None, "rate"),
        (float("inf"), None, "rate"),
        (10, 0, "batch_size"),
    ],
)
def test_bad_rates_are_refused_and_change_nothing(
    plan: FaultPlan, calls: Calls, rate: float, batch_size: int | None, problem: str
) -> None:
    before = plan.pacing
    with pytest.raises(ValueError, match=problem):
        plan.set_rate(rate, batch_size)
    assert plan.pacing is before
    assert calls.count == 0


def test_the_constructor_refuses_a_bad_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        FaultPlan(-1, 10)


def test_pause_and_resume_bump_the_epoch_every_time(plan: FaultPlan, calls: Calls) -> None:
    plan.pause()
    assert plan.pacing.paused and not plan.pacing.streaming
    plan.resume()
    plan.resume()
    assert not plan.pacing.paused and plan.pacing.streaming
    # A repeated resume still restarts the schedule: no catch-up burst.
    assert plan.pacing.epoch == 3
    assert calls.count == 3


def test_pacing_snapshots_never_change(plan: FaultPlan) -> None:
    snapshot = plan.pacing
    plan.set_rate(1, batch_size=1)
    plan.pause()
    assert snapshot == Pacing(rate=50.0, batch_size=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.rate = 2.0  # type: ignore[misc]


def test_without_a_listener_changes_still_apply() -> None:
    plan = FaultPlan(1, 1)
    plan.pause()
    assert plan.pacing.paused


def test_auth_failures_come_out_in_order_then_none(plan: FaultPlan) -> None:
    assert plan.take_auth_failure() is None
    plan.fail_next_auth(406, 402)
    plan.fail_next_auth(409)
    assert [plan.take_auth_failure() for _ in range(4)] == [406, 402, 409, None]


def test_subscribe_rejections_default_to_405(plan: FaultPlan) -> None:
    plan.reject_next_subscribe()
    plan.reject_next_subscribe(410)
    assert [plan.take_subscribe_rejection() for _ in range(3)] == [405, 410, None]


def test_rest_failures_are_queued_per_endpoint(plan: FaultPlan) -> None:
    plan.fail_rest("positions", 503, times=2, retry_after=1.5)
    plan.fail_rest("snapshots", 429, ratelimit_reset=2_000_000_000.2)
    plan.fail_rest("snapshots", 500, times=0)
    assert plan.take_rest_failure("snapshots") == RestFailure(429, None, 2_000_000_000.2)
    assert plan.take_rest_failure("snapshots") is None
    assert plan.take_rest_failure("positions") == RestFailure(503, 1.5, None)
    assert plan.take_rest_failure("positions") == RestFailure(503, 1.5, None)
    assert plan.take_rest_failure("positions") is None


@pytest.mark.parametrize("status", [200, 399, 600])
def test_rest_failures_must_be_http_errors(plan: FaultPlan, status: int) -> None:
    with pytest.raises(ValueError, match="HTTP error status"):
        plan.fail_rest("positions", status)
    assert plan.take_rest_failure("positions") is None


def test_clearing_rest_failures_leaves_the_websocket_faults(plan: FaultPlan) -> None:
    plan.fail_rest("positions")
    plan.fail_rest("snapshots", times=3)
    plan.fail_next_auth(406)
    plan.reject_next_subscribe()
    plan.clear_rest_failures()
    assert plan.take_rest_failure("positions") is None
    assert plan.take_rest_failure("snapshots") is None
    assert plan.take_auth_failure() == 406
    assert plan.take_subscribe_rejection() == 405
