"""Failure classification (fatal or retry, and the bounded cause label) and the retry plan."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.exceptions import (
    AlpacaError,
    AuthenticationError,
    ConnectionLimitError,
    HandshakeError,
    ProtocolError,
    SlowClientError,
    StreamConnectionError,
)
from libs.market_data.stream.clock import StallDetected
from libs.market_data.stream.failures import (
    CONNECTION_LIMIT,
    STABLE_AFTER,
    Ended,
    Retry,
    RetryPolicy,
    SteadyRetry,
    TakeoverRetry,
    TakeoverSchedule,
    Verdict,
    classify,
    plan_retry,
)
from libs.market_data.stream.protocol import ErrorMessage


def raised_from(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


CLOSED = ConnectionClosedError(Close(1011, "boom"), None)


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        (None, "closed"),
        (StallDetected(12.0, 24.0), "stall"),
        (raised_from(StallDetected(1.0, 2.0), CLOSED), "stall"),  # a stall closes the socket
        (raised_from(StreamConnectionError("connection closed"), CLOSED), "closed"),
        (raised_from(ProtocolError("no answer"), TimeoutError()), "timeout"),
        (ProtocolError("expected 'connected'"), "protocol"),
        (raised_from(StreamConnectionError("cannot connect"), OSError()), "connect"),
        (StreamConnectionError("anything else"), "connect"),
        (ConnectionLimitError(406, "connection limit exceeded"), "alpaca_406"),
        (SlowClientError(407, "slow client"), "alpaca_407"),
        (AlpacaError(500, "internal error"), "alpaca_500"),
        (AlpacaError(413, "star subscription"), "alpaca_413"),
        (AlpacaError(599, "new"), "alpaca_other"),
        (AlpacaError(1, "odd"), "alpaca_other"),
        (ErrorMessage(code=406, msg="connection limit exceeded"), "alpaca_406"),
        (HandshakeError(503), "handshake"),
        (HandshakeError(429, retry_after=3.0), "handshake"),
        (HandshakeError(408), "handshake"),
    ],
)
def test_retried_failures_and_their_cause(
    failure: Exception | ErrorMessage | None, cause: str
) -> None:
    verdict = classify(failure)
    assert not verdict.fatal
    assert verdict.cause == cause


@pytest.mark.parametrize("code", [402, 409, 410, 411])
def test_refused_credentials_plan_or_scope_are_fatal(code: int) -> None:
    for failure in (AuthenticationError(code, "no"), ErrorMessage(code=code, msg="no")):
        verdict = classify(failure)
        assert verdict.fatal
        assert verdict.cause == f"alpaca_{code}"
        assert "credentials" in verdict.hint


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 426])
def test_a_handshake_refused_with_4xx_is_fatal(status: int) -> None:
    verdict = classify(HandshakeError(status))
    assert verdict == Verdict(
        fatal=True, cause="handshake", retry_after=None, hint="check the URL and credentials"
    )


def test_the_servers_retry_after_is_carried() -> None:
    assert classify(HandshakeError(429, retry_after=7.5)).retry_after == 7.5


def test_no_decision_reads_the_message_text() -> None:
    # A stall's text on a plain error is just a closed socket; a stall with any text is one.
    text = str(StallDetected(3.0, 6.0))
    assert classify(raised_from(StreamConnectionError(text), CLOSED)).cause == "closed"
    stall = StallDetected(3.0, 6.0)
    stall.args = ("something else entirely",)
    assert classify(stall).cause == "stall"


# -- the retry plan ------------------------------------------------------------------------

POLICY = BackoffPolicy(base=1.0, maximum=8.0, max_attempts=3, jitter=0.0)
RETRY = Verdict(fatal=False, cause="closed")


def test_attempts_count_up_with_doubling_delays_then_run_out() -> None:
    steps = []
    attempts = 0
    for _ in range(4):
        retry = plan_retry(RETRY, attempts, lasted=0.1, backoff=POLICY)
        steps.append((retry.attempt, retry.delay))
        attempts = retry.attempt
    assert steps == [(1, 1.0), (2, 2.0), (3, 4.0), (4, None)]


def test_a_session_that_held_long_enough_starts_the_count_over() -> None:
    assert plan_retry(RETRY, 3, lasted=STABLE_AFTER, backoff=POLICY).attempt == 1
    assert plan_retry(RETRY, 2, lasted=STABLE_AFTER - 1, backoff=POLICY).attempt == 3


def test_the_servers_wait_wins_over_a_shorter_backoff_even_past_the_cap() -> None:
    asked = Verdict(fatal=False, cause="handshake", retry_after=30.0)
    assert plan_retry(asked, 0, lasted=0.0, backoff=POLICY).delay == 30.0
    brief = Verdict(fatal=False, cause="handshake", retry_after=0.5)
    assert plan_retry(brief, 1, lasted=0.0, backoff=POLICY).delay == 2.0


# -- retry policies: one instance's, and a new leader's (docs/leadership.md) -----------

LIMIT = Verdict(fatal=False, cause=CONNECTION_LIMIT)
STEADY = BackoffPolicy(base=5.0, maximum=300.0, max_attempts=10, jitter=0.0)
SCHEDULE = TakeoverSchedule(delays=(0.25, 0.5, 1.0, 2.0), cap=1.5, per_minute=8)


def _run(policy: RetryPolicy, verdicts: list[Verdict], now: float = 0.0) -> list[Retry]:
    """Plan after each failure in turn, the clock moving on by each planned delay."""
    plans = []
    attempts = 0
    for verdict in verdicts:
        retry = policy.plan(Ended(verdict, attempts, lasted=0.01, established=False, now=now))
        plans.append(retry)
        attempts = retry.attempt
        now += retry.delay or 0.0
    return plans


def test_a_new_leaders_406s_are_retried_soon_then_with_the_normal_backoff() -> None:
    policy = TakeoverRetry(STEADY, SCHEDULE)
    policy.begin(0.0)
    plans = _run(policy, [LIMIT] * 7)
    # 2.0 is capped at the lease TTL; the fast ones leave the backoff's count alone.
    assert [(p.attempt, p.delay) for p in plans] == [
        (0, 0.25),
        (0, 0.5),
        (0, 1.0),
        (0, 1.5),
        (1, 5.0),
        (2, 10.0),
        (3, 20.0),
    ]


def test_one_instance_keeps_the_normal_backoff_for_a_406() -> None:
    steady = SteadyRetry(STEADY)
    steady.begin(0.0)
    assert [p.delay for p in _run(steady, [LIMIT] * 3)] == [5.0, 10.0, 20.0]
    assert [p.delay for p in _run(SteadyRetry(POLICY), [RETRY] * 4)] == [1.0, 2.0, 4.0, None]


def test_the_fast_schedule_needs_a_term_to_have_begun() -> None:
    assert _run(TakeoverRetry(STEADY, SCHEDULE), [LIMIT])[0].delay == 5.0


def test_an_established_session_ends_the_takeover_window() -> None:
    policy = TakeoverRetry(STEADY, SCHEDULE)
    policy.begin(0.0)
    # The slot was ours: a 406 after that is our own dead socket, held ~90 s at Alpaca.
    retry = policy.plan(Ended(LIMIT, 0, lasted=30.0, established=True, now=30.0))
    assert (retry.attempt, retry.delay) == (1, 5.0)
    later = policy.plan(Ended(LIMIT, retry.attempt, lasted=0.01, established=False, now=35.0))
    assert (later.attempt, later.delay) == (2, 10.0)  # still the normal rule


def test_another_failure_first_ends_the_window_too() -> None:
    policy = TakeoverRetry(STEADY, SCHEDULE)
    policy.begin(0.0)
    closed = Verdict(fatal=False, cause="closed")
    assert [p.delay for p in _run(policy, [closed, LIMIT])] == [5.0, 10.0]


def test_each_term_gets_the_schedule_again() -> None:
    policy = TakeoverRetry(STEADY, SCHEDULE)
    policy.begin(0.0)
    assert [p.delay for p in _run(policy, [LIMIT] * 2)] == [0.25, 0.5]
    policy.begin(100.0)
    assert [p.delay for p in _run(policy, [LIMIT] * 2, now=100.0)] == [0.25, 0.5]


def test_fast_retries_are_bounded_per_minute_however_often_leadership_flaps() -> None:
    # A term every 1.5 s for ten minutes, every attempt refused with 406.
    policy = TakeoverRetry(STEADY, SCHEDULE)
    fast: list[float] = []
    term = 0.0
    while term < 600.0:
        policy.begin(term)
        now, attempts = term, 0
        while now < term + 1.5:
            retry = policy.plan(Ended(LIMIT, attempts, 0.01, established=False, now=now))
            if retry.attempt == attempts:  # a fast one: the backoff's count stood still
                fast.append(now)
            attempts = retry.attempt
            now += retry.delay or 0.0
        term += 1.5
    windows = [sum(1 for t in fast if start <= t < start + 60.0) for start in fast]
    assert max(windows) == SCHEDULE.per_minute
    assert len(fast) >= 10 * SCHEDULE.per_minute  # the budget comes back every minute


@pytest.mark.parametrize(
    "options",
    [{"delays": ()}, {"delays": (0.5, 0.0)}, {"cap": 0.0}, {"per_minute": 0}],
)
def test_a_takeover_schedule_is_checked(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"takeover|per_minute"):
        TakeoverSchedule(**options)  # type: ignore[arg-type]
