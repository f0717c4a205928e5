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
from libs.market_data.stream.failures import STABLE_AFTER, Verdict, classify, plan_retry
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
