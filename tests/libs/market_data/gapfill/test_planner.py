"""The gap fill's decisions, without I/O: coalescing, symbols, batches, budgets, cooldown,
and which REST quotes are newer than what is held."""

from __future__ import annotations

from decimal import Decimal

import pytest

from libs.market_data.broker.models import LatestQuote
from libs.market_data.gapfill import (
    FillOutcome,
    FillPlan,
    FillResult,
    FillTrigger,
    GapFillPlanner,
    GapFillPolicy,
    SkipReason,
    newer_quotes,
)
from libs.market_data.gapfill.planner import PlannerState
from libs.telemetry import instant_key

RECONNECTED = FillTrigger.RECONNECTED
SUBSCRIBE = FillTrigger.SUBSCRIBE


def latest(symbol: str, t: str, bid: str = "10.00", ask: str = "10.02") -> LatestQuote:
    return LatestQuote(
        symbol=symbol,
        bid_price=Decimal(bid),
        ask_price=Decimal(ask),
        bid_size=1,
        ask_size=1,
        timestamp=t,
    )


def planned(planner: GapFillPlanner, held: dict[str, str | None], now: float) -> FillPlan:
    request = planner.take({"AAPL", "MSFT", "TSLA", "AMD", "IBM"})
    assert request is not None
    plan = planner.plan(request, held, now)
    assert isinstance(plan, FillPlan), plan
    return plan


def test_a_subscription_fills_only_its_symbols_and_a_reconnect_fills_all() -> None:
    planner = GapFillPlanner()
    planner.request(SUBSCRIBE, ["TSLA", "NOPE"])  # NOPE: no longer subscribed
    request = planner.take({"AAPL", "TSLA"})
    assert request is not None
    assert request.symbols == ("TSLA",)
    assert request.triggers == (SUBSCRIBE,)
    planner.finish(FillResult(FillOutcome.FILLED, request, 0.0))

    planner.request(RECONNECTED)
    request = planner.take({"TSLA", "AAPL"})
    assert request is not None
    assert request.symbols == ("AAPL", "TSLA")


def test_triggers_while_a_fill_runs_are_coalesced_into_one_waiting_fill() -> None:
    planner = GapFillPlanner()
    planner.request(RECONNECTED)
    running = planner.take({"AAPL"})
    assert running is not None
    assert planner.state is PlannerState.RUNNING
    # Arriving meanwhile: one waiting fill, run after this one, not a second at once.
    planner.request(SUBSCRIBE, ["MSFT"])
    planner.request(FillTrigger.REDIS_RECOVERED)
    planner.request(SUBSCRIBE, ["TSLA"])
    assert planner.take({"AAPL", "MSFT", "TSLA"}) is None  # one at a time
    planner.finish(FillResult(FillOutcome.FILLED, running, 0.0))
    waiting = planner.take({"AAPL", "MSFT", "TSLA"})
    assert waiting is not None
    assert waiting.triggers == (SUBSCRIBE, FillTrigger.REDIS_RECOVERED)
    assert waiting.symbols == ("AAPL", "MSFT", "TSLA")  # a recovery covers every symbol
    assert planner.status().coalesced == 2
    assert not planner.pending


def test_nothing_to_fill_when_no_requested_symbol_is_subscribed() -> None:
    planner = GapFillPlanner()
    planner.request(SUBSCRIBE, ["GONE"])
    assert planner.take({"AAPL"}) is None
    assert planner.state is PlannerState.IDLE


def test_symbols_without_a_price_come_first_then_the_oldest_within_the_calls_per_fill() -> None:
    planner = GapFillPlanner(GapFillPolicy(batch_size=2, max_calls=2))
    planner.request(RECONNECTED)
    held = {
        "AAPL": instant_key("2026-01-02T15:00:03Z"),
        "MSFT": instant_key("2026-01-02T15:00:01Z"),
        "TSLA": None,
        "AMD": instant_key("2026-01-02T15:00:02Z"),
        "IBM": instant_key("2026-01-02T15:00:04Z"),
    }
    plan = planned(planner, held, now=0.0)
    assert plan.batches == (("TSLA", "MSFT"), ("AMD", "AAPL"))
    assert plan.left_out == ("IBM",)  # the freshest waits for its next quote


def test_the_calls_per_minute_budget_spans_fills_and_recovers_after_a_minute() -> None:
    planner = GapFillPlanner(GapFillPolicy(max_calls=3, calls_per_minute=4, batch_size=1))
    for _ in range(3):
        planner.call_made(100.0)
    planner.request(RECONNECTED)
    plan = planned(planner, {}, now=110.0)
    assert len(plan.batches) == 1  # 4 a minute, 3 spent
    planner.call_made(110.0)
    planner.finish(FillResult(FillOutcome.FILLED, plan.request, 110.0))

    planner.request(RECONNECTED)
    request = planner.take({"AAPL"})
    assert request is not None
    assert planner.plan(request, {}, 159.0) is SkipReason.RATE_BUDGET
    planner.finish(FillResult(FillOutcome.SKIPPED, request, 159.0, reason=SkipReason.RATE_BUDGET))

    planner.request(RECONNECTED)
    plan = planned(planner, {}, now=160.5)  # the first three calls left the window
    assert len(plan.batches) == 3
    assert planner.status().skipped_by_reason == {"rate_budget": 1}


def test_after_a_rest_failure_fills_are_skipped_for_the_cooldown_or_retry_after() -> None:
    planner = GapFillPlanner(GapFillPolicy(cooldown=10.0))
    planner.rest_failed(100.0, None)
    planner.request(RECONNECTED)
    request = planner.take({"AAPL"})
    assert request is not None
    assert planner.plan(request, {}, 109.9) is SkipReason.COOLING_DOWN
    assert isinstance(planner.plan(request, {}, 110.0), FillPlan)

    planner.rest_failed(200.0, 42.0)  # the server said when to come back
    assert planner.plan(request, {}, 241.0) is SkipReason.COOLING_DOWN
    assert isinstance(planner.plan(request, {}, 242.0), FillPlan)


def test_only_quotes_strictly_newer_than_the_held_one_are_written() -> None:
    held = {
        "AAPL": instant_key("2026-01-02T15:00:00.5Z"),
        "MSFT": instant_key("2026-01-02T15:00:00.5Z"),
        "TSLA": instant_key("2026-01-02T15:00:00.5Z"),
        "AMD": None,
    }
    selection = newer_quotes(
        [
            latest("AAPL", "2026-01-02T15:00:00.500000001Z"),  # newer by a nanosecond
            latest("MSFT", "2026-01-02T15:00:00.50Z"),  # the same instant, other text
            latest("TSLA", "2026-01-02T15:00:00Z"),  # older: never overwrites
            latest("AMD", "2020-01-01T00:00:00Z"),  # nothing held: anything will do
            latest("IBM", "yesterday"),
        ],
        held,
    )
    assert [q.symbol for q in selection.newer] == ["AAPL", "AMD"]
    assert selection.not_newer == ("MSFT", "TSLA")
    assert selection.unreadable == ("IBM",)


def test_status_counts_fills_partials_skips_and_the_last_result() -> None:
    planner = GapFillPlanner()
    planner.request(RECONNECTED)
    request = planner.take({"AAPL", "MSFT"})
    assert request is not None
    planner.call_made(1.0)
    planner.finish(FillResult(FillOutcome.FILLED, request, 1.0, ("AAPL", "MSFT"), 1))
    planner.request(SUBSCRIBE, ["AAPL"])
    request = planner.take({"AAPL"})
    assert request is not None
    planner.finish(FillResult(FillOutcome.PARTIAL, request, 2.0, ("AAPL",), 1, SkipReason.DEADLINE))
    planner.request(SUBSCRIBE, ["AAPL"])
    request = planner.take({"AAPL"})
    assert request is not None
    planner.finish(
        FillResult(FillOutcome.SKIPPED, request, 3.0, reason=SkipReason.REST_UNAVAILABLE)
    )
    status = planner.status()
    assert (status.fills, status.partial, status.skipped) == (2, 1, 1)
    assert status.symbols_refreshed == 3
    assert status.rest_calls == 1
    assert status.skipped_by_reason == {"rest_unavailable": 1}
    assert status.last_outcome == "skipped"
    assert status.last_trigger == "subscribe"
    assert status.last_reason == "rest_unavailable"
    assert not status.running


def test_the_policy_refuses_bounds_that_mean_nothing() -> None:
    with pytest.raises(ValueError, match="timeout"):
        GapFillPolicy(timeout=0)
    with pytest.raises(ValueError, match="max_calls"):
        GapFillPolicy(max_calls=0)
    with pytest.raises(ValueError, match="batch_size"):
        GapFillPolicy(batch_size=101)


def test_a_batch_holds_stocks_or_crypto_pairs_never_both_neediest_batch_first() -> None:
    planner = GapFillPlanner(GapFillPolicy(max_calls=2, batch_size=2))
    planner.request(RECONNECTED)
    request = planner.take({"AAPL", "MSFT", "TSLA", "BTC/USD", "ETH/USD"})
    assert request is not None
    held: dict[str, str | None] = {
        "AAPL": instant_key("2026-01-02T15:00:03Z"),
        "MSFT": instant_key("2026-01-02T15:00:04Z"),
        "TSLA": instant_key("2026-01-02T15:00:05Z"),
        "BTC/USD": None,  # nothing held: its batch goes first
        "ETH/USD": instant_key("2026-01-02T15:00:01Z"),
    }
    plan = planner.plan(request, held, 0.0)
    assert isinstance(plan, FillPlan)
    # One endpoint per batch (stocks', or crypto's); the budget of 2 leaves TSLA out.
    assert plan.batches == (("BTC/USD", "ETH/USD"), ("AAPL", "MSFT"))
    assert plan.left_out == ("TSLA",)
