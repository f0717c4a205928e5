"""The gap fill's asyncio shell: :class:`GapFiller` waits for triggers, reads latest quotes
over REST within the planner's budget and deadline, and writes the newer ones through
the pipeline, then announces ``gap.filled``.

Decisions are :class:`~libs.market_data.gapfill.planner.GapFillPlanner`'s; this module
only sleeps, calls and writes (docs/architecture.md, "Gap fill").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from libs.market_data.broker.models import LatestQuote, LatestQuotesReader
from libs.market_data.exceptions import (
    BrokerAPIError,
    BrokerRateLimitError,
    BrokerUnavailableError,
)
from libs.market_data.gapfill.planner import GapFillPlanner, newer_quotes
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
from libs.market_data.gapfill.target import FillTarget, TargetUnavailableError

__all__ = ["GAP_FILLED", "GapFiller"]

logger = logging.getLogger(__name__)

GAP_FILLED = "gap.filled"
_TRIGGERS = {trigger.value: trigger for trigger in FillTrigger}


def _rest_reason(exc: BrokerAPIError) -> SkipReason:
    if isinstance(exc, BrokerRateLimitError):
        return SkipReason.REST_RATE_LIMITED
    if isinstance(exc, BrokerUnavailableError):
        return SkipReason.REST_UNAVAILABLE
    return SkipReason.REST_REFUSED  # 401/403 (BrokerAuthError), other 4xx, a bad answer


class GapFiller:
    """Fills the cache from REST latest quotes after gaps and for new subscriptions.

    :meth:`on_notice` takes every status notice (the sink's listener) and
    :meth:`request` new subscriptions; :meth:`run` does the fills until cancelled. A
    request made before :meth:`run` waits for it.
    """

    def __init__(
        self,
        reader: LatestQuotesReader,
        target: FillTarget,
        policy: GapFillPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._reader = reader
        self._target = target
        self._planner = GapFillPlanner(policy)
        self._clock = clock
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def policy(self) -> GapFillPolicy:
        return self._planner.policy

    def status(self) -> GapFillStatus:
        """Counters and the last result (``/health``, ``/metrics``)."""
        return self._planner.status()

    # -- triggers ----------------------------------------------------------------------

    def on_notice(self, event: str, details: Mapping[str, Any]) -> None:
        """A status notice went out: a reconnect or a Redis recovery asks for a fill."""
        trigger = _TRIGGERS.get(event)
        if trigger is not None and trigger is not FillTrigger.SUBSCRIBE:
            self.request(trigger)

    def request(self, trigger: FillTrigger, symbols: Iterable[str] = ()) -> None:
        """Ask for a fill (merged with one already waiting)."""
        self._planner.request(trigger, symbols)
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no fill runs or waits; ``False`` if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run fills as they are asked for, one at a time, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            request = self._planner.take(self._target.subscribed)
            if request is not None:
                try:
                    result = await self._fill(request)
                except asyncio.CancelledError:
                    self._planner.abort()  # stopped mid-fill: a later run starts afresh
                    self._idle.set()
                    raise
                except Exception as exc:  # a fill must never take the stream down
                    logger.exception("gap fill failed")
                    result = FillResult(
                        FillOutcome.SKIPPED,
                        request,
                        self._clock(),
                        reason=SkipReason.ERROR,
                        detail=f"unexpected error: {exc!r}",
                    )
                self._planner.finish(result)
                self._log(result)
            if self._planner.pending:
                self._wake.set()
            else:
                self._idle.set()

    async def _fill(self, request: FillRequest) -> FillResult:
        policy = self._planner.policy
        started = self._clock()
        try:
            async with asyncio.timeout(policy.timeout):
                held = await self._target.held_instants(request.symbols)
        except (TargetUnavailableError, TimeoutError) as exc:
            why = str(exc) or "cache read timed out"
            skip = SkipReason.CACHE_UNREADABLE
            return FillResult(FillOutcome.SKIPPED, request, started, reason=skip, detail=why)
        plan = self._planner.plan(request, held, started)
        if isinstance(plan, SkipReason):
            return FillResult(FillOutcome.SKIPPED, request, started, reason=plan)
        fetched, calls, reason, detail = await self._fetch(plan, started)
        if not fetched and reason is not None:
            return FillResult(
                FillOutcome.SKIPPED, request, started, calls=calls, reason=reason, detail=detail
            )
        # The stream may have moved on during the fetch: compare with what it holds now.
        processed = self._target.processed_instants(fetched)
        for symbol, instant in processed.items():
            previous = held.get(symbol)
            if instant is not None and (previous is None or instant > previous):
                held[symbol] = instant
        selection = newer_quotes(fetched.values(), held)
        refreshed = sorted(await self._target.write(selection.newer))
        # After a gap the notice says it is closed, even with nothing newer to write; a
        # subscription that found nothing newer has nothing to announce.
        if refreshed or any(trigger in WHOLE_SET for trigger in request.triggers):
            self._target.announce(
                GAP_FILLED,
                {
                    "trigger": request.triggers[0].value,
                    "triggers": [trigger.value for trigger in request.triggers],
                    "symbols": refreshed,
                    "requested": len(request.symbols),
                    "complete": reason is None and not plan.left_out,
                },
            )
        outcome = FillOutcome.FILLED if reason is None else FillOutcome.PARTIAL
        return FillResult(
            outcome, request, started, tuple(refreshed), calls, reason=reason, detail=detail
        )

    async def _fetch(
        self, plan: FillPlan, now: float
    ) -> tuple[dict[str, LatestQuote], int, SkipReason | None, str | None]:
        """Read the plan's batches in order until done, a failure, or the deadline."""
        fetched: dict[str, LatestQuote] = {}
        calls = 0
        try:
            async with asyncio.timeout(self._planner.policy.timeout):
                for batch in plan.batches:
                    self._planner.call_made(now)
                    calls += 1
                    quotes = await self._reader.get_latest_quotes(batch)
                    # Only what was asked: a symbol the answer adds is not ours to write.
                    fetched.update((s, quotes[s]) for s in batch if s in quotes)
        except TimeoutError:
            return fetched, calls, SkipReason.DEADLINE, "no answer within the fill's deadline"
        except BrokerAPIError as exc:
            self._planner.rest_failed(self._clock(), exc.retry_after)
            return fetched, calls, _rest_reason(exc), str(exc)
        return fetched, calls, None, None

    def _log(self, result: FillResult) -> None:
        triggers = "+".join(result.request.triggers)
        if result.outcome is FillOutcome.SKIPPED:
            reason = result.reason.value if result.reason else "?"
            logger.warning(
                "gap fill after %s skipped (%s)%s",
                triggers,
                reason,
                f": {result.detail}" if result.detail else "",
            )
            return
        logger.info(
            "gap fill after %s %s: %d of %d symbols refreshed in %d REST call%s%s",
            triggers,
            result.outcome.value,
            len(result.refreshed),
            len(result.request.symbols),
            result.calls,
            "" if result.calls == 1 else "s",
            f" ({result.reason.value})" if result.reason else "",
        )
