"""Subscriptions that follow open positions: :class:`PositionBasedSubscription`.

Every ``interval`` seconds the open positions are read from the broker; their symbols
are held in the :class:`~libs.market_data.subscriptions.registry.SubscriptionRegistry` under
the ``positions`` source, and symbols whose position closed are released from it.
The registry keeps a symbol at the broker while any source holds it, so a symbol also
subscribed by hand survives its position closing.

A failed read changes nothing: the subscriptions stay as the last good read left them
(dropping them on a broker hiccup would blind the P&L exactly when it matters), and
the failure is kept in :meth:`PositionBasedSubscription.status` for ``/health``.
The next read comes ``interval`` seconds later, or when a rate-limited broker asks if
that is later, but never more than five minutes (or one interval) away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Final

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.broker.crypto import CRYPTO_ASSET_CLASS
from libs.market_data.broker.models import Position, PositionsReader
from libs.market_data.exceptions import InvalidSymbolError, MarketDataError
from libs.market_data.subscriptions.registry import SubscriptionRegistry, SubscriptionSource
from libs.market_data.symbols import is_crypto, normalize_symbol
from libs.tasks import cancel_and_wait

__all__ = [
    "STREAMED_ASSET_CLASSES",
    "PositionBasedSubscription",
    "PositionSyncStatus",
    "SyncResult",
]

logger = logging.getLogger(__name__)

# Equities stream on the stock feed, crypto on the crypto feed, under the pair the
# broker client names the position by (BTCUSD -> BTC/USD, libs.market_data.broker.crypto).
# Options (msgpack-only) and crypto perpetuals are not streamed: subscribing them would
# only spend the plan's symbol limit. "" covers brokers (and simulators) that leave the
# class out.
STREAMED_ASSET_CLASSES: Final = frozenset({"us_equity", "crypto", ""})
# However long a rate limit asks us to wait, look again at least this often (or every
# interval, if that is longer).
_MAX_BACKOFF_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync changed: symbols newly held and released for positions."""

    added: list[str]
    removed: list[str]
    symbols: list[str]  # every symbol with an open, streamed position


@dataclass(slots=True)
class PositionSyncStatus:
    """The sync's state for ``/health``; times are wall-clock epoch seconds."""

    interval_seconds: float
    running: bool = False
    syncs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    symbols: list[str] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        """True while the most recent sync failed."""
        return self.consecutive_failures > 0


class PositionBasedSubscription:
    """Keeps the ``positions`` source of a registry equal to the open positions."""

    def __init__(
        self,
        positions: PositionsReader,
        registry: SubscriptionRegistry,
        *,
        interval: float = 30.0,
        asset_classes: Collection[str] = STREAMED_ASSET_CLASSES,
    ) -> None:
        if not 0 < interval < float("inf"):
            raise ValueError(f"interval must be a finite number of seconds > 0, got {interval}")
        self._positions = positions
        self._registry = registry
        self._asset_classes = frozenset(asset_classes)
        # A steady schedule, ``base`` apart: the delay does not grow with failures (the
        # REST client already retried each read); only a server's wait stretches it, up
        # to ``maximum``. docs/positions.md, "The REST client".
        self._backoff = BackoffPolicy(
            base=interval, maximum=max(interval, _MAX_BACKOFF_S), jitter=0.0
        )
        self._status = PositionSyncStatus(interval_seconds=interval)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def status(self) -> PositionSyncStatus:
        """A copy of the current state."""
        return replace(
            self._status,
            running=self._task is not None and not self._task.done(),
            symbols=list(self._status.symbols),
        )

    def delay_after(self, error: BaseException | None) -> float:
        """Seconds until the next sync: the interval, or longer when ``error`` carries
        the broker's ``retry_after`` (asking before the rate limit resets is wasted)."""
        delay = self._backoff.base
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, float) and retry_after > delay:
            delay = min(retry_after, self._backoff.maximum)
        return delay

    def _streamed_symbols(self, positions: list[Position]) -> list[str]:
        symbols: dict[str, None] = {}
        for position in positions:
            if position.qty == 0 or position.asset_class not in self._asset_classes:
                continue
            if position.asset_class == CRYPTO_ASSET_CLASS and not is_crypto(position.symbol):
                # No pair could be read off it: on the stock feed it would never quote.
                logger.warning("crypto position %s not followed: not a pair", position.symbol)
                continue
            try:
                symbols.setdefault(normalize_symbol(position.symbol), None)
            except InvalidSymbolError as exc:
                logger.warning("position not followed: %s", exc)
        return sorted(symbols)

    async def sync_once(self) -> SyncResult:
        """Read the positions and apply them to the registry once.

        Raises what failed (the broker's REST error, a refused subscribe) after
        recording it; subscriptions the failing step did not reach stay as they were.
        """
        async with self._lock:
            status = self._status
            status.last_attempt_at = time.time()
            try:
                positions = await self._positions.get_positions()
                wanted = self._streamed_symbols(positions)
                held = self._registry.symbols(SubscriptionSource.POSITIONS)
                # Release first: under a plan's symbol limit the freed slots may be needed.
                open_now = set(wanted)
                stale = [s for s in held if s not in open_now]
                removed = (
                    await self._registry.remove(stale, SubscriptionSource.POSITIONS)
                    if stale
                    else []
                )
                added = await self._registry.add(wanted, SubscriptionSource.POSITIONS)
            except Exception as exc:
                status.failures += 1
                status.consecutive_failures += 1
                status.last_error = str(exc) or repr(exc)
                raise
            status.syncs += 1
            status.consecutive_failures = 0
            status.last_error = None
            status.last_success_at = time.time()
            status.symbols = wanted
        if added or removed:
            logger.info("positions sync: subscribed %s, released %s", added, removed)
        return SyncResult(added=added, removed=removed, symbols=wanted)

    async def run(self) -> None:
        """Sync now and then every ``interval`` seconds until cancelled."""
        while True:
            failure: MarketDataError | None = None
            try:
                await self.sync_once()
            except MarketDataError as exc:
                failure = exc
                logger.warning(
                    "positions sync failed (%d in a row), subscriptions unchanged: %s",
                    self._status.consecutive_failures,
                    exc,
                )
            except Exception:
                # A bug must not end the sync for good: it is in the status and the log.
                logger.exception("positions sync failed unexpectedly")
            await asyncio.sleep(self.delay_after(failure))

    def start(self) -> None:
        """Run :meth:`run` as a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="position-sync")

    async def stop(self) -> None:
        """Cancel the background task and wait for it."""
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait(task)
