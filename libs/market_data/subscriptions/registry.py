"""Which symbols are wanted, and why: the desired subscriptions, kept in Redis.

A symbol can be wanted by hand (the HTTP API) and by open positions at the same time;
it stays subscribed at the broker while any source holds it, so a closed position never
removes a symbol a person subscribed. The set lives in the Redis hash
``market_data:subscriptions`` (:mod:`~libs.market_data.subscriptions.saved`), so a restarted
service resumes the same symbols. The entries are topics (:mod:`libs.market_data.topics`):
a bare symbol is its quotes, as before; ``trades:AAPL``, ``bars:AAPL`` and ``*`` (the
whole market) are entries of their own, each with its sources.

That hash is what the next start relies on, and Redis can lose it without a word
(``FLUSHALL``, a restart without persistence, a failover to an empty replica).
:meth:`SubscriptionRegistry.maintain` restores it at startup, retrying until Redis
answers, then checks it against the wanted set every ``interval`` and rewrites it when
it differs (docs/architecture.md, "Redis faults").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Protocol

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.exceptions import MarketDataError
from libs.market_data.keys import SUBSCRIPTIONS_KEY
from libs.market_data.subscriptions.saved import SubscriptionSource, encode_saved, parse_saved
from libs.market_data.topics import channel_topics
from libs.redis_client import RedisClient, RedisClientError

__all__ = [
    "SUBSCRIPTIONS_KEY",
    "SubscriptionForwarder",
    "SubscriptionRegistry",
    "SubscriptionSource",
    "SubscriptionTarget",
]

logger = logging.getLogger(__name__)

# 0.1 s doubling to 2 s, then every 2 s until Redis answers.
_RESTORE: Final = BackoffPolicy(base=0.1, maximum=2.0, jitter=0.0)


class SubscriptionTarget(Protocol):
    """What the registry steers: the broker subscriptions (``AlpacaMarketDataStream``)."""

    async def subscribe_symbols(self, symbols: Iterable[str]) -> list[str]: ...

    async def unsubscribe_symbols(self, symbols: Iterable[str]) -> list[str]: ...

    def get_subscribed_symbols(self) -> list[str]: ...

    def get_subscribed_topics(self) -> list[str]: ...


class SubscriptionForwarder(Protocol):
    """Where a standby's registry sends changes: the leader (docs/leadership.md).

    ``forward`` answers the symbols changed and the whole saved set afterwards, or
    raises what the leader's registry raised (``SubscriptionError`` for a refusal).
    """

    async def forward(
        self, op: str, symbols: list[str], source: str
    ) -> tuple[list[str], dict[str, list[str]]]: ...


class SubscriptionRegistry:
    """The desired subscriptions with their sources, applied to a stream and persisted."""

    def __init__(
        self,
        stream: SubscriptionTarget,
        store: RedisClient | None = None,
        *,
        key: str = SUBSCRIPTIONS_KEY,
    ) -> None:
        self._stream = stream
        self._store = store
        self._key = key
        self._sources: dict[str, set[SubscriptionSource]] = {}
        self._lock = asyncio.Lock()
        self._dirty = False  # a change Redis has not seen yet
        # Until the saved set is read, a full rewrite of the hash would erase it.
        self._restored = store is None
        # Set while a standby (leader election): changes go to the leader, which
        # applies and saves them; this registry then mirrors the saved set.
        self.forwarder: SubscriptionForwarder | None = None
        self.rewrites = 0  # times the saved set was found lost or stale and rewritten
        self.restore_failures = 0
        self.last_error: str | None = None

    @property
    def persisted(self) -> bool:
        """False while a change could not be written to Redis."""
        return not self._dirty

    @property
    def restored(self) -> bool:
        """True once the saved set has been read (or there is no store)."""
        return self._restored

    def sources(self) -> dict[str, list[str]]:
        """Every wanted symbol with its sources, sorted."""
        return {s: sorted(src.value for src in self._sources[s]) for s in sorted(self._sources)}

    def symbols(self, source: SubscriptionSource | None = None) -> list[str]:
        """Wanted symbols, all or those held by ``source``, sorted."""
        return sorted(s for s, src in self._sources.items() if source is None or source in src)

    async def restore(self, timeout: float | None = None) -> list[str]:
        """Load the persisted set and subscribe the stream to it; returns the symbols.

        One attempt: if Redis does not answer (within ``timeout``), logs, returns ``[]``
        and leaves :attr:`restored` false; :meth:`maintain` retries.
        """
        if self._store is None:
            return []
        try:
            async with asyncio.timeout(timeout):
                stored = await self._store.hgetall(self._key)
        except (RedisClientError, TimeoutError) as exc:
            self.restore_failures += 1
            self.last_error = str(exc) or f"no answer within {timeout:g}s"
            logger.error("could not restore subscriptions from Redis: %s", self.last_error)
            return []
        restored = parse_saved(stored)
        async with self._lock:
            try:
                await self._stream.subscribe_symbols(sorted(restored))
            except MarketDataError as exc:
                # The broker refused them: keep serving the others; the error is logged.
                logger.error("restored subscriptions refused by the broker: %s", exc)
                restored = {s: v for s, v in restored.items() if s in self._stream_symbols()}
            for symbol, sources in restored.items():
                self._sources.setdefault(symbol, set()).update(sources)
            self._restored = True
            self.last_error = None
        if restored:
            logger.info("restored %d subscriptions from Redis", len(restored))
        return sorted(restored)

    async def mirror(self, sources: Mapping[str, Iterable[str]]) -> None:
        """Hold exactly ``sources`` (symbol -> source names), as another instance saved
        them: the target follows, nothing is written to Redis. A standby mirrors the
        leader's set, so it answers reads alike and streams it once it leads
        (docs/leadership.md)."""
        wanted = parse_saved({s: ",".join(v) for s, v in sources.items()})
        async with self._lock:
            gone = [s for s in self._sources if s not in wanted]
            new = [s for s in wanted if s not in self._sources]
            if gone:
                await self._stream.unsubscribe_symbols(gone)
            if new:
                await self._stream.subscribe_symbols(new)
            self._sources = wanted
            self._restored = True
            self._dirty = False

    async def refresh(self) -> bool:
        """:meth:`mirror` the saved set; False if Redis did not answer."""
        if self._store is None:
            return False
        try:
            stored = await self._store.hgetall(self._key)
        except RedisClientError as exc:
            self.last_error = str(exc)
            return False
        await self.mirror({s: v.split(",") for s, v in stored.items()})
        return True

    def _stream_symbols(self) -> set[str]:
        return set(self._stream.get_subscribed_topics())

    async def maintain(self, interval: float, on_lost: Callable[[], object] | None = None) -> None:
        """Restore until Redis answers, then keep the saved set equal to the wanted one.

        ``on_lost`` is called when the saved set was found missing while symbols are
        wanted: Redis lost its data, so the cached prices are gone too.
        """
        attempt = 0
        while not self._restored:
            await self.restore(timeout=max(interval, 1.0))
            if not self._restored:
                await asyncio.sleep(_RESTORE.delay(attempt))
                attempt += 1
        while True:
            await asyncio.sleep(interval)
            if await self.reconcile() == "lost" and on_lost is not None:
                on_lost()

    async def reconcile(self) -> str:
        """Rewrite the saved set if it differs from the wanted one.

        Returns ``"ok"``, ``"rewritten"`` (it differed), ``"lost"`` (it was gone while
        symbols are wanted) or ``"unavailable"`` (Redis did not answer).
        """
        if self._store is None or not self._restored:
            return "unavailable"
        async with self._lock:
            wanted = encode_saved(self._sources)
            try:
                stored = await self._store.hgetall(self._key)
                if stored == wanted:
                    self._dirty = False
                    return "ok"
                await self._store.replace_hash(self._key, wanted)
            except RedisClientError as exc:
                self.last_error = str(exc)
                return "unavailable"
            self._dirty = False
            self.rewrites += 1
            lost = not stored and bool(wanted)
            logger.warning(
                "saved subscriptions %s in Redis (%d saved, %d wanted); rewritten",
                "lost" if lost else "out of date",
                len(stored),
                len(wanted),
            )
            return "lost" if lost else "rewritten"

    async def add(self, symbols: Iterable[str], source: SubscriptionSource) -> list[str]:
        """Hold ``symbols`` for ``source``; returns those it did not hold before.

        Raises what the target's ``subscribe_symbols`` raises; then nothing
        is recorded for the refused symbols.
        """
        wanted = channel_topics(symbols)
        if self.forwarder is not None:  # a standby: the leader applies it
            return await self._forward(self.forwarder, "add", wanted, source)
        async with self._lock:
            new_at_broker = [s for s in wanted if s not in self._sources]
            if new_at_broker:
                await self._stream.subscribe_symbols(new_at_broker)
            added = [s for s in wanted if source not in self._sources.get(s, ())]
            for symbol in added:
                self._sources.setdefault(symbol, set()).add(source)
            await self._persist(added)
        return added

    async def remove(self, symbols: Iterable[str], source: SubscriptionSource) -> list[str]:
        """Release ``symbols`` for ``source``; returns those it held.

        A symbol leaves the broker only when no source holds it any more.
        """
        wanted = channel_topics(symbols)
        if self.forwarder is not None:  # a standby: the leader applies it
            return await self._forward(self.forwarder, "remove", wanted, source)
        async with self._lock:
            released = [s for s in wanted if source in self._sources.get(s, ())]
            unused: list[str] = []
            for symbol in released:
                sources = self._sources[symbol]
                sources.discard(source)
                if not sources:
                    del self._sources[symbol]
                    unused.append(symbol)
            if unused:
                await self._stream.unsubscribe_symbols(unused)
            await self._persist(released)
        return released

    async def _forward(
        self,
        forwarder: SubscriptionForwarder,
        op: str,
        wanted: list[str],
        source: SubscriptionSource,
    ) -> list[str]:
        """A standby's change: the leader applies and saves it; mirror the saved set."""
        changed, saved = await forwarder.forward(op, wanted, source.value)
        await self.mirror(saved)
        return changed

    async def _persist(self, changed: list[str]) -> None:
        if self._store is None or not (changed or self._dirty):
            return
        try:
            if self._dirty and self._restored:
                # An earlier write failed: rewrite the whole set rather than guess.
                await self._store.replace_hash(self._key, encode_saved(self._sources))
            else:
                if self._dirty:  # not restored yet: add what we hold, erase nothing
                    changed = [*self._sources, *changed]
                present = encode_saved({s: self._sources[s] for s in changed if s in self._sources})
                await self._store.hset(self._key, present)
                await self._store.hdel(self._key, *[s for s in changed if s not in self._sources])
            self._dirty = False
        except RedisClientError as exc:
            self._dirty = True
            logger.warning("subscriptions not saved to Redis (will retry): %s", exc)
