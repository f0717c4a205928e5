"""The gap fill's typed records: its policy, what triggers it, a plan, a result, its status.

docs/architecture.md ("Gap fill") describes when a fill runs and what bounds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from libs.market_data import defaults
from libs.market_data.broker.client import LATEST_QUOTES_BATCH

__all__ = [
    "FillOutcome",
    "FillPlan",
    "FillRequest",
    "FillResult",
    "FillTrigger",
    "GapFillPolicy",
    "GapFillStatus",
    "SkipReason",
]


class FillTrigger(StrEnum):
    """Why a fill runs: the notice that announced a gap, or a new subscription."""

    RECONNECTED = "stream.reconnected"
    REDIS_RECOVERED = "redis.recovered"
    SUBSCRIBE = "subscribe"


# Triggers after which every subscribed symbol may be behind (not just the new ones).
WHOLE_SET: frozenset[FillTrigger] = frozenset(
    {FillTrigger.RECONNECTED, FillTrigger.REDIS_RECOVERED}
)


class FillOutcome(StrEnum):
    FILLED = "filled"  # every planned batch was read (the budget may have left some out)
    PARTIAL = "partial"  # some batches read, then REST failed or the deadline passed
    SKIPPED = "skipped"  # nothing read: see SkipReason


class SkipReason(StrEnum):
    """Why a fill read nothing; a bounded set (the metric's label)."""

    REST_UNAVAILABLE = "rest_unavailable"  # 5xx or no answer, after the client's retries
    REST_RATE_LIMITED = "rest_rate_limited"  # 429 after the retries
    REST_REFUSED = "rest_refused"  # 401/403 or another 4xx, or an unreadable answer
    COOLING_DOWN = "cooling_down"  # REST failed a moment ago (or asked us to wait)
    RATE_BUDGET = "rate_budget"  # this minute's share of the REST limit is spent
    DEADLINE = "deadline"  # GAP_FILL_TIMEOUT passed before any answer
    CACHE_UNREADABLE = "cache_unreadable"  # the cached timestamps could not be read
    ERROR = "error"  # a bug: logged with its traceback


@dataclass(frozen=True, slots=True)
class GapFillPolicy:
    """The bounds of the gap fill (defaults in :mod:`libs.market_data.defaults`).

    ``timeout``: seconds one fill may take; ``max_calls``: REST requests per fill, each
    of ``batch_size`` symbols; ``calls_per_minute``: requests over all fills in any 60 s
    (the REST limit is shared with order entry); ``cooldown``: seconds fills are
    skipped after REST failed, unless the server said how long (``Retry-After``).
    """

    timeout: float = defaults.GAP_FILL_TIMEOUT
    max_calls: int = defaults.GAP_FILL_MAX_CALLS
    batch_size: int = LATEST_QUOTES_BATCH
    calls_per_minute: int = defaults.GAP_FILL_CALLS_PER_MINUTE
    cooldown: float = defaults.GAP_FILL_COOLDOWN

    def __post_init__(self) -> None:
        if not 0 < self.timeout < float("inf"):
            raise ValueError(f"timeout must be a finite number > 0, got {self.timeout}")
        if self.max_calls < 1 or self.calls_per_minute < 1:
            raise ValueError("max_calls and calls_per_minute must be >= 1")
        if not 1 <= self.batch_size <= LATEST_QUOTES_BATCH:
            raise ValueError(f"batch_size must be within 1..{LATEST_QUOTES_BATCH}")
        if not 0 <= self.cooldown < float("inf"):
            raise ValueError(f"cooldown must be a finite number >= 0, got {self.cooldown}")


@dataclass(frozen=True, slots=True)
class FillRequest:
    """What one fill is for: its triggers (coalesced, first first) and its symbols."""

    triggers: tuple[FillTrigger, ...]
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FillPlan:
    """The REST requests of one fill, most needed symbols first; ``left_out`` did not fit
    the budget."""

    request: FillRequest
    batches: tuple[tuple[str, ...], ...]
    left_out: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FillResult:
    """How one fill ended. ``refreshed``: symbols whose REST quote was newer than what
    the service held and went through the pipeline."""

    outcome: FillOutcome
    request: FillRequest
    at: float
    refreshed: tuple[str, ...] = ()
    calls: int = 0
    reason: SkipReason | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class GapFillStatus:
    """Counters and the last result, for ``/health`` and ``/metrics``. Times: epoch s."""

    running: bool = False
    fills: int = 0  # filled + partial
    partial: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    symbols_refreshed: int = 0
    rest_calls: int = 0
    coalesced: int = 0  # triggers merged into a fill already waiting
    last_outcome: str | None = None
    last_trigger: str | None = None
    last_at: float | None = None
    last_reason: str | None = None
    last_detail: str | None = None
    last_refreshed: int = 0
    cooling_down_until: float | None = None
