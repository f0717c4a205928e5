"""The read loop's fair turns: when a reader that never waits gives the event loop a turn."""

from __future__ import annotations

import pytest

from libs.market_data.stream.turns import TurnBudget


def test_a_turn_is_due_once_the_budget_is_spent_then_the_budget_starts_again() -> None:
    # Binary fractions, so the sums are exact.
    turns = TurnBudget(10.0, 0.5)
    assert not turns.due(10.25)
    assert turns.due(10.5)
    assert not turns.due(10.75)
    assert turns.due(11.125)
    assert not turns.due(11.5)


def test_a_zero_budget_gives_a_turn_after_every_frame() -> None:
    turns = TurnBudget(10.0, 0.0)
    assert [turns.due(10.0) for _ in range(3)] == [True, True, True]


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        TurnBudget(10.0, -1.0)
