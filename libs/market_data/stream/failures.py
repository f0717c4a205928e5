"""Whether a lost session is worth another attempt, when, and the cause it counts under.

:func:`classify` decides for every way a session ends: an exception from connecting or
reading, an error frame, the socket closing, the handshake's HTTP status. Decisions come
from types and codes only, never from an exception's text. The cause is a short name
from a fixed set, because it becomes a metric label (docs/observability.md): ``stall``,
``closed``, ``timeout``, ``protocol``, ``handshake``, ``connect``, ``alpaca_<code>`` for
the codes Alpaca documents and ``alpaca_other`` for the rest. :func:`plan_retry` then
says how long to wait, or that the attempts are used up. Both are pure functions.

The connection asks a :class:`RetryPolicy` the stream chose: :class:`SteadyRetry` is
:func:`plan_retry` alone (one instance, ``LEADER_ELECTION=off``); :class:`TakeoverRetry`
is a new leader's, which retries a 406 on a short bounded schedule first, because the
lease already rules out a second instance of ours: the broker still holds the previous
leader's socket (docs/leadership.md, "A 406 right after a takeover"). Policies are
sans-I/O: the clock is passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final, Protocol

from websockets.exceptions import ConnectionClosed

from libs.market_data import defaults
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

__all__ = [
    "CONNECTION_LIMIT",
    "KNOWN_CODES",
    "STABLE_AFTER",
    "Ended",
    "Retry",
    "RetryPolicy",
    "SteadyRetry",
    "TakeoverRetry",
    "TakeoverSchedule",
    "Verdict",
    "classify",
    "plan_retry",
]

# Codes Alpaca documents; any other is labelled "alpaca_other" (a bounded label set).
KNOWN_CODES: Final = frozenset({*range(400, 414), 500})
# A session that stayed up this long counts as recovered even if no data came
# (nothing subscribed, or a quiet feed), so rare drops never exhaust the attempts.
STABLE_AFTER: Final = 60.0
# The cause of a 406: another session holds the account's connection slot.
CONNECTION_LIMIT: Final = "alpaca_406"
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


@dataclass(frozen=True, slots=True)
class Ended:
    """One session's end, as a retry policy sees it.

    ``attempts``: failures in a row before this one; ``lasted``: seconds the session
    lived; ``established``: it got as far as its subscriptions' ack; ``now``: the
    monotonic clock.
    """

    verdict: Verdict
    attempts: int
    lasted: float
    established: bool
    now: float


class RetryPolicy(Protocol):
    """When a lost session is tried again; the connection only asks it."""

    def begin(self, now: float) -> None:
        """The connection's run starts (a leader's term, or the one instance's start)."""

    def plan(self, ended: Ended) -> Retry:
        """The next step after a retryable failure."""


@dataclass(slots=True)
class SteadyRetry:
    """:func:`plan_retry` alone: one instance, whose 406 is a socket of its own (or
    another program's) that the broker has not freed yet, ~90 s at Alpaca."""

    backoff: BackoffPolicy

    def begin(self, now: float) -> None:
        pass

    def plan(self, ended: Ended) -> Retry:
        return plan_retry(ended.verdict, ended.attempts, ended.lasted, self.backoff)


@dataclass(frozen=True, slots=True)
class TakeoverSchedule:
    """A new leader's 406 waits: ``delays`` in turn, none longer than ``cap`` (the lease
    TTL), and at most ``per_minute`` of them over any 60 s, however often leadership
    changes hands. Then the normal backoff."""

    delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    cap: float = defaults.LEADER_LEASE_TTL
    per_minute: int = 8

    def __post_init__(self) -> None:
        if not self.delays or any(d <= 0 for d in self.delays) or self.cap <= 0:
            raise ValueError("takeover delays and their cap must be positive")
        if self.per_minute < 1:
            raise ValueError("per_minute must be at least 1")


_MINUTE: Final = 60.0


@dataclass(slots=True)
class TakeoverRetry:
    """A leader's policy: a 406 before its first established session of the term is
    the previous leader's socket, still held by the broker; retry it soon.

    The fast retries do not count against the backoff's attempts: once they are spent
    (or the term's first session was established, or the minute's budget is used) the
    normal policy takes over from its first step, as :class:`SteadyRetry`.
    """

    backoff: BackoffPolicy
    schedule: TakeoverSchedule = TakeoverSchedule()
    _fast: int = field(default=0, init=False)  # fast retries used this term
    _open: bool = field(default=False, init=False)  # before the term's first session
    # When each fast retry was planned, over the last minute (all terms).
    _spent: deque[float] = field(default_factory=deque, init=False)

    def begin(self, now: float) -> None:
        self._fast = 0
        self._open = True

    def plan(self, ended: Ended) -> Retry:
        if ended.established:
            self._open = False  # the slot was ours: a later 406 is not the takeover's
        delays = self.schedule.delays
        if ended.verdict.cause == CONNECTION_LIMIT and self._open and self._fast < len(delays):
            spent = self._spent
            while spent and spent[0] <= ended.now - _MINUTE:
                spent.popleft()
            if len(spent) < self.schedule.per_minute:
                spent.append(ended.now)
                delay = min(delays[self._fast], self.schedule.cap)
                self._fast += 1
                return Retry(ended.attempts, delay)
        self._open = False
        return plan_retry(ended.verdict, ended.attempts, ended.lasted, self.backoff)
