"""Whether a lost session is worth another attempt, when, and the cause it counts under.

:func:`classify` decides for every way a session ends: an exception from connecting or
reading, an error frame, the socket closing, the handshake's HTTP status. Decisions come
from types and codes only, never from an exception's text. The cause is a short name
from a fixed set, because it becomes a metric label (docs/observability.md): ``stall``,
``closed``, ``timeout``, ``protocol``, ``handshake``, ``connect``, ``alpaca_<code>`` for
the codes Alpaca documents and ``alpaca_other`` for the rest. :func:`plan_retry` then
says how long to wait, or that the attempts are used up. Both are pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from websockets.exceptions import ConnectionClosed

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.exceptions import (
    AlpacaError,
    AuthenticationError,
    HandshakeError,
    ProtocolError,
)
from libs.market_data.stream.clock import StallDetected
from libs.market_data.stream.protocol import ErrorMessage
from libs.market_data.stream.session import alpaca_error

__all__ = ["KNOWN_CODES", "STABLE_AFTER", "Retry", "Verdict", "classify", "plan_retry"]

# Codes Alpaca documents; any other is labelled "alpaca_other" (a bounded label set).
KNOWN_CODES: Final = frozenset({*range(400, 414), 500})
# A session that stayed up this long counts as recovered even if no data came
# (nothing subscribed, or a quiet feed), so rare drops never exhaust the attempts.
STABLE_AFTER: Final = 60.0
# Handshake refusals that are about timing, not about us: retried like any outage.
_RETRIED_4XX: Final = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do about a failure.

    ``fatal``: give up for good (``hint`` says what a person must change first).
    ``cause``: the bounded name it is counted and logged under.
    ``retry_after``: the least wait the server asked for, if it said.
    """

    fatal: bool
    cause: str
    retry_after: float | None = None
    hint: str = ""


_CLOSED: Final = Verdict(fatal=False, cause="closed")


def classify(failure: BaseException | ErrorMessage | None) -> Verdict:
    """The verdict on one failure; ``None`` means the server ended the session cleanly."""
    if failure is None:
        return _CLOSED
    if isinstance(failure, ErrorMessage):
        failure = alpaca_error(failure)
    if isinstance(failure, StallDetected):
        return Verdict(fatal=False, cause="stall")  # our data clock closed a silent socket
    if isinstance(failure, AlpacaError):
        cause = f"alpaca_{failure.code}" if failure.code in KNOWN_CODES else "alpaca_other"
        if isinstance(failure, AuthenticationError):
            return Verdict(fatal=True, cause=cause, hint="fix the credentials or plan")
        return Verdict(fatal=False, cause=cause)
    if isinstance(failure, HandshakeError):
        # A 4xx says the request itself is wrong (path, credentials, plan): asking again
        # the same way gets the same answer. 5xx, 408 and 429 are the server's moment.
        fatal = 400 <= failure.status < 500 and failure.status not in _RETRIED_4XX
        return Verdict(
            fatal=fatal,
            cause="handshake",
            retry_after=failure.retry_after,
            hint="check the URL and credentials" if fatal else "",
        )
    origin = failure.__cause__  # what the library error was raised from
    if isinstance(origin, ConnectionClosed):
        return _CLOSED
    if isinstance(origin, TimeoutError):
        return Verdict(fatal=False, cause="timeout")
    if isinstance(failure, ProtocolError):
        return Verdict(fatal=False, cause="protocol")
    return Verdict(fatal=False, cause="connect")


@dataclass(frozen=True, slots=True)
class Retry:
    """``attempt``: consecutive failed attempts, this one included; ``delay``: seconds to
    wait before the next, or ``None`` when the attempts are used up."""

    attempt: int
    delay: float | None


def plan_retry(verdict: Verdict, attempts: int, lasted: float, backoff: BackoffPolicy) -> Retry:
    """The next step after a retryable failure of a session that ``lasted`` seconds,
    ``attempts`` failures in a row before it."""
    attempt = (0 if lasted >= STABLE_AFTER else attempts) + 1
    if attempt > backoff.max_attempts:
        return Retry(attempt, None)
    delay = backoff.delay(attempt)
    if verdict.retry_after is not None:
        delay = max(delay, verdict.retry_after)  # the server's wait, even past our cap
    return Retry(attempt, delay)
