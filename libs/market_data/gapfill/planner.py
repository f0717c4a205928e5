"""The gap fill's decisions, without I/O: which symbols, in which batches, within which
budget, and which REST quotes are newer than what the service holds.

:class:`GapFillPlanner` is a small state machine (``idle`` -> ``running`` -> ``idle``,
changed only in :meth:`GapFillPlanner._enter`). Triggers that arrive while a fill runs
are merged into one waiting request, run right after. The budget is two limits: REST
calls per fill, and calls in any 60 s over all fills (the REST limit is shared with
order entry). After REST failed, fills are skipped for a cooldown. Times are passed in
(``now``, seconds), so every rule is tested without a clock (docs/architecture.md,
"Gap fill").
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from libs.market_data.broker.models import LatestQuote
from libs.market_data.gapfill.records import (
    WHOLE_SET,
    FillOutcome,
    FillPlan,
    FillRequest,
    FillResult,
    FillTrigger,
    GapFillPolicy,
    GapFillStatus,
    SkipReason,
)
from libs.market_data.symbols import is_crypto
from libs.telemetry import instant_key

__all__ = ["GapFillPlanner", "PlannerState", "Selection", "newer_quotes"]

_WINDOW: Final = 60.0  # seconds of the calls-per-minute budget


class PlannerState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"


@dataclass(frozen=True, slots=True)
class Selection:
    """REST quotes sorted against what is held: ``newer`` go through the pipeline."""

    newer: tuple[LatestQuote, ...]
    not_newer: tuple[str, ...]  # as old as, or older than, the held quote
    unreadable: tuple[str, ...]  # a timestamp that is no RFC 3339 instant


def newer_quotes(quotes: Iterable[LatestQuote], held: Mapping[str, str | None]) -> Selection:
    """The quotes strictly newer than the held instant of their symbol (``instant_key``
    form, ``None``: nothing held). An equal one is the quote we already have; an older
    one must never overwrite a newer cached price (the restart case)."""
    newer: list[LatestQuote] = []
    not_newer: list[str] = []
    unreadable: list[str] = []
    for quote in quotes:
        try:
            instant = instant_key(quote.timestamp)
        except ValueError:
            unreadable.append(quote.symbol)
            continue
        previous = held.get(quote.symbol)
        if previous is None or instant > previous:
            newer.append(quote)
        else:
            not_newer.append(quote.symbol)
    return Selection(tuple(newer), tuple(not_newer), tuple(unreadable))


class GapFillPlanner:
    """Decides fills and keeps their counters; the runner does the I/O."""

    def __init__(self, policy: GapFillPolicy | None = None) -> None:
        self.policy = policy if policy is not None else GapFillPolicy()
        self._state = PlannerState.IDLE
        self._pending_triggers: list[FillTrigger] = []
        self._pending_symbols: dict[str, None] = {}  # insertion-ordered set
        self._whole_set = False
        self._calls: deque[float] = deque()  # times of REST calls within the window
        self._cooldown_until: float | None = None
        self._skips: Counter[str] = Counter()
        self._fills = self._partial = self._refreshed = self._rest_calls = self._coalesced = 0
        self._last: FillResult | None = None

    # -- state -----------------------------------------------------------------------

    @property
    def state(self) -> PlannerState:
        return self._state

    @property
    def pending(self) -> bool:
        """Whether a request waits to be run."""
        return bool(self._pending_triggers)

    def _enter(self, state: PlannerState) -> None:
        """The one place the state changes."""
        self._state = state

    # -- requests ----------------------------------------------------------------------

    def request(self, trigger: FillTrigger, symbols: Iterable[str] = ()) -> None:
        """Ask for a fill; merged with the one already waiting, if any.

        A reconnect or a Redis recovery covers every subscribed symbol; a subscription
        only the symbols it added.
        """
        if self._pending_triggers:
            self._coalesced += 1
        if trigger not in self._pending_triggers:
            self._pending_triggers.append(trigger)
        if trigger in WHOLE_SET:
            self._whole_set = True
        else:
            self._pending_symbols.update(dict.fromkeys(symbols))

    def take(self, subscribed: Collection[str]) -> FillRequest | None:
        """Start the waiting request, its symbols resolved against the subscribed set
        now (an unsubscribed symbol is not read); ``None`` when none waits or no symbol
        is left. Only while idle."""
        if self._state is not PlannerState.IDLE or not self._pending_triggers:
            return None
        triggers = tuple(self._pending_triggers)
        if self._whole_set:
            symbols = tuple(sorted(subscribed))
        else:
            symbols = tuple(s for s in self._pending_symbols if s in subscribed)
        self._pending_triggers.clear()
        self._pending_symbols.clear()
        self._whole_set = False
        if not symbols:
            return None
        self._enter(PlannerState.RUNNING)
        return FillRequest(triggers, symbols)

    def plan(
        self, request: FillRequest, held: Mapping[str, str | None], now: float
    ) -> FillPlan | SkipReason:
        """The batches for ``request`` within the budget, symbols without a held price
        first, then the oldest held; or why the fill is skipped. A batch holds stocks or
        crypto pairs, never both: each kind has its own endpoint, one call per batch."""
        if self._cooldown_until is not None:
            if now < self._cooldown_until:
                return SkipReason.COOLING_DOWN
            self._cooldown_until = None
        calls = self._calls
        while calls and calls[0] <= now - _WINDOW:
            calls.popleft()
        budget = min(self.policy.max_calls, self.policy.calls_per_minute - len(calls))
        if budget <= 0:
            return SkipReason.RATE_BUDGET
        # "" sorts before every instant: symbols with nothing held come first.
        ordered = sorted(request.symbols, key=lambda s: (held.get(s) or "", s))
        size = self.policy.batch_size
        batches: list[tuple[str, ...]] = []
        for crypto in (False, True):
            kind = [s for s in ordered if is_crypto(s) is crypto]
            batches += (tuple(kind[i : i + size]) for i in range(0, len(kind), size))
        # Stably by each batch's first (its most wanted) symbol: the neediest go first.
        rank = {symbol: index for index, symbol in enumerate(ordered)}
        batches.sort(key=lambda batch: rank[batch[0]])
        left_out = tuple(s for batch in batches[budget:] for s in batch)
        return FillPlan(request, tuple(batches[:budget]), left_out)

    def call_made(self, now: float) -> None:
        """Count one REST request against the budget (before it is sent)."""
        self._calls.append(now)
        self._rest_calls += 1

    def rest_failed(self, now: float, retry_after: float | None) -> None:
        """REST failed: skip fills for the server's wait, else the policy's cooldown."""
        wait = self.policy.cooldown if retry_after is None else max(retry_after, 0.0)
        self._cooldown_until = now + wait

    def finish(self, result: FillResult) -> None:
        """Record how the running fill ended; back to idle."""
        self._last = result
        if result.outcome is FillOutcome.SKIPPED:
            self._skips[result.reason.value if result.reason else "unknown"] += 1
        else:
            self._fills += 1
            self._partial += result.outcome is FillOutcome.PARTIAL
            self._refreshed += len(result.refreshed)
        self._enter(PlannerState.IDLE)

    def abort(self) -> None:
        """The running fill was cancelled (the stream stopped): back to idle, unrecorded."""
        self._enter(PlannerState.IDLE)

    # -- status ------------------------------------------------------------------------

    def status(self) -> GapFillStatus:
        last = self._last
        return GapFillStatus(
            running=self._state is PlannerState.RUNNING,
            fills=self._fills,
            partial=self._partial,
            skipped=sum(self._skips.values()),
            skipped_by_reason=dict(sorted(self._skips.items())),
            symbols_refreshed=self._refreshed,
            rest_calls=self._rest_calls,
            coalesced=self._coalesced,
            last_outcome=None if last is None else last.outcome.value,
            last_trigger=None if last is None else "+".join(last.request.triggers),
            last_at=None if last is None else last.at,
            last_reason=None if last is None or last.reason is None else last.reason.value,
            last_detail=None if last is None else last.detail,
            last_refreshed=0 if last is None else len(last.refreshed),
            cooling_down_until=self._cooldown_until,
        )
