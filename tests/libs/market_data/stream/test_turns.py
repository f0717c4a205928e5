"""The read loop's fair turns: when a reader that never waits gives the event loop a turn."""

from __future__ import annotations

import pytest

from libs.market_data.stream.turns import WAITED, TurnBudget


def frame(turns: TurnBudget, arrived: float, handled: float) -> bool:
    turns.received(arrived)
    return turns.due(handled)


def test_a_reader_that_never_waits_gives_a_turn_each_time_its_budget_is_spent() -> None:
    # Binary fractions, so the sums are exact; each frame arrives as the last is done.
    turns = TurnBudget(10.0, 0.5)
    assert not frame(turns, 10.0, 10.25)
    assert frame(turns, 10.25, 10.5)
    assert not frame(turns, 10.5, 10.75)
    assert frame(turns, 10.75, 11.125)
    assert not frame(turns, 11.125, 11.5)


def test_a_reader_paced_by_its_feed_never_gives_extra_turns() -> None:
    # Each frame arrives after a wait (the loop had its turns then): a new stretch.
    turns = TurnBudget(10.0, 0.5)
    assert [frame(turns, 10.0 + k, 10.0 + k + 0.25) for k in range(1, 6)] == [False] * 5
    # A frame whose own handling spends the budget still gives one.
    assert frame(turns, 20.0, 20.5)


def test_a_wait_shorter_than_waited_is_not_a_wait() -> None:
    turns = TurnBudget(10.0, 0.5)
    assert not frame(turns, 10.0, 10.25)
    assert frame(turns, 10.25 + WAITED / 2, 10.5 + WAITED / 2)


def test_a_zero_budget_gives_a_turn_after_every_frame() -> None:
    turns = TurnBudget(10.0, 0.0)
    assert [frame(turns, 10.0, 10.0) for _ in range(3)] == [True, True, True]


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        TurnBudget(10.0, -1.0)
