"""``PriceSubscriber``: live prices from Redis with no hole and no duplicate.

Pub/sub is at-most-once: a subscriber that is disconnected, or dropped by Redis for
falling behind, misses events without being told. This reader closes those holes with
the ``seq``/``epoch`` the service puts in every record and event (README, "What lands in
Redis")::

    async with PriceSubscriber("redis://localhost:6379", symbols=["AAPL", "MSFT"]) as sub:
        async for update in sub:  # kind: "snapshot", "update" or "resync"
            ...
        sub.latest("AAPL")  # the newest known price, or None

- It subscribes first (``price.updated.{SYM}`` or the pattern, and
  ``market_data.status``), then reads the cache (``MGET price:{SYM}``): events with a
  ``seq`` at most the snapshot's (same epoch) are dropped.
- A gap is a ``seq`` jump, an event of another epoch, a notice on ``market_data.status``
  (anything but ``stream.disconnected``), or its own lost connection. On a gap it yields
  a ``resync`` update naming the symbols and the reason, re-reads the cache for them
  (yielding ``snapshot`` updates), and carries on.
- It reconnects with :class:`~libs.market_data.backoff.BackoffPolicy` and gives up
  (:class:`SubscriberError`) after ``max_attempts`` consecutive failures.

The connection is a link: one Redis (``standalone_link``) or a Redis Cluster's shards
(``cluster_link``), read the same way; this module is the gap logic on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, Literal, Self

from redis.exceptions import ConnectionError as RedisConnectionError

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.consumers.cluster_link import ShardedLink
from libs.market_data.consumers.records import (
    LivePrice,
    SubscriberUpdate,
    notice_event,
    parse_price,
)
from libs.market_data.consumers.standalone_link import LOST, StandaloneLink
from libs.market_data.exceptions import SubscriberError
from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.market_data.symbols import normalize_symbols
from libs.redis_client import RedisConnectionParams
from libs.redis_client.cluster import ClusterParams

__all__ = ["DEFAULT_SUBSCRIBER_BACKOFF", "PriceSubscriber"]

logger = logging.getLogger(__name__)

# 0.05 s doubling to 2 s; about three minutes of failures before giving up.
DEFAULT_SUBSCRIBER_BACKOFF: Final = BackoffPolicy(base=0.05, maximum=2.0, max_attempts=100)
_MGET_CHUNK: Final = 500
_POLL: Final = 1.0  # seconds one read waits for a message before checking for close()
_CLOSE_TIMEOUT: Final = 2.0  # seconds closing the connections may take


class PriceSubscriber:
    """Typed, gap-aware live prices from the service's Redis (see the module doc).

    One consumer iterates it. ``symbols="*"`` follows every symbol of the namespace.
    """

    def __init__(
        self,
        redis_url_or_params: str | RedisConnectionParams | ClusterParams,
        symbols: Iterable[str] | Literal["*"] = "*",
        *,
        keys: KeySpace = DEFAULT_KEYS,
        backoff: BackoffPolicy = DEFAULT_SUBSCRIBER_BACKOFF,
    ) -> None:
        if isinstance(redis_url_or_params, str):
            redis_url_or_params = RedisConnectionParams.from_url(redis_url_or_params)
        # A Redis Cluster (docs/cluster.md): sharded pub/sub and per-slot reads.
        self._cluster: ClusterParams | None = None
        if isinstance(redis_url_or_params, ClusterParams):
            self._cluster = redis_url_or_params
            keys = KeySpace(keys.namespace, cluster=True)
            redis_url_or_params = redis_url_or_params.first()
        self._params = redis_url_or_params
        self._keys = keys
        self._backoff = backoff
        self._all = symbols == "*"
        self._wanted: tuple[str, ...] = () if symbols == "*" else tuple(normalize_symbols(symbols))
        if not self._all and not self._wanted:
            raise ValueError('symbols: at least one, or "*"')
        self._latest: dict[str, LivePrice] = {}
        self._pending: deque[SubscriberUpdate] = deque()
        self._link: StandaloneLink | ShardedLink | None = None
        self._closed = False
        self._connected_once = False
        self._failures = 0
        # Counters, for tests and for a consumer's own metrics.
        self.resyncs = 0
        self.reconnects = 0
        self.duplicates_dropped = 0
        self.malformed = 0

    # -- public ---------------------------------------------------------------------------

    def latest(self, symbol: str) -> LivePrice | None:
        """The newest known price of ``symbol``, or ``None``."""
        return self._latest.get(symbol.strip().upper())

    def prices(self) -> dict[str, LivePrice]:
        """Every known symbol's newest price (a copy)."""
        return dict(self._latest)

    @property
    def queued(self) -> int:
        """Updates ready to be yielded without reading Redis (e.g. the snapshot that
        ``connect()`` took): a fan-out drains them before it calls itself ready."""
        return len(self._pending)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Subscribe and take the snapshot (queued as ``snapshot`` updates), with backoff."""
        while True:
            try:
                await self._connect()
                return
            except LOST as exc:
                await self._lost(exc)

    async def close(self) -> None:
        """Unsubscribe and close; iteration ends."""
        self._closed = True
        await self._teardown()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SubscriberUpdate:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            try:
                if self._link is None:
                    again = self._connected_once
                    await self._connect()
                    if again:
                        self._resync_queue_reason("reconnected")
                    continue
                message = await self._link.get_message(timeout=_POLL)
                if message is not None:
                    await self._handle(message)
            except LOST as exc:
                if self._closed:
                    raise StopAsyncIteration from None
                await self._lost(exc)
        return self._pending.popleft()

    # -- connection -------------------------------------------------------------------------

    async def _connect(self) -> None:
        link: StandaloneLink | ShardedLink = (
            StandaloneLink(self._params, self._keys)
            if self._cluster is None
            else ShardedLink(self._cluster, self._keys)
        )
        self._link = link
        try:
            await link.open(self._keys.status_channel, None if self._all else self._wanted)
        except BaseException:
            await self._teardown()  # the next attempt starts from a fresh link
            raise
        self._connected_once = True
        # Subscribed: now the snapshot; anything published from here on is in the socket.
        await self._read_cache(await self._symbols_to_read(), announce=None)
        self._failures = 0

    async def _lost(self, exc: BaseException) -> None:
        await self._teardown()
        self._failures += 1
        if self._failures > self._backoff.max_attempts:
            raise SubscriberError(f"Redis unreachable after {self._failures - 1} attempts: {exc}")
        self.reconnects += 1
        logger.info("price subscriber lost Redis (%s); reconnecting", exc)
        await asyncio.sleep(self._backoff.delay(self._failures))

    async def _teardown(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            # Bounded: a node that went away mid-close must not hold close() forever.
            with contextlib.suppress(*LOST, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await link.aclose()

    # -- the cache ---------------------------------------------------------------------------

    async def _symbols_to_read(self) -> list[str]:
        if not self._all:
            return list(self._wanted)
        found = set(self._latest)
        if self._link is not None:
            found.update(await self._link.known_symbols())
        return sorted(found)

    def _resync_queue_reason(self, reason: str) -> None:
        # _connect has already queued the snapshots: put the resync before them.
        snapshots = list(self._pending)
        self._pending.clear()
        self._announce(tuple(u.symbol for u in snapshots if u.symbol), reason)
        self._pending.extend(snapshots)

    def _announce(self, symbols: tuple[str, ...], reason: str) -> None:
        self.resyncs += 1
        logger.info("price subscriber resync (%s): %d symbols", reason, len(symbols))
        self._pending.append(SubscriberUpdate("resync", symbols=symbols, reason=reason))

    async def _read_cache(self, symbols: list[str], announce: str | None) -> None:
        """Re-read ``symbols`` from the cache, queueing a snapshot per cached symbol."""
        if announce is not None:
            self._announce(tuple(symbols), announce)
        link = self._link
        if link is None:  # close() ran meanwhile: a lost connection, iteration ends
            raise RedisConnectionError("the subscriber closed while reading the cache")
        for start in range(0, len(symbols), _MGET_CHUNK):
            chunk = symbols[start : start + _MGET_CHUNK]
            names = [self._keys.price_key(s) for s in chunk]
            # On a cluster one MGET per slot (docs/cluster.md).
            raws: list[Any] = await link.mget(names)
            for symbol, raw in zip(chunk, raws, strict=True):
                if raw is None:
                    continue
                price = parse_price(raw)
                if price is None or price.symbol != symbol:
                    self.malformed += 1
                    continue
                current = self._latest.get(symbol)
                if (
                    current is not None
                    and current.epoch
                    and price.epoch == current.epoch
                    and price.seq < current.seq
                ):
                    price = current  # never go back within an epoch
                self._latest[symbol] = price
                self._pending.append(SubscriberUpdate("snapshot", symbol, price))

    # -- messages ------------------------------------------------------------------------------

    async def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] not in ("message", "pmessage", "smessage"):
            return  # (p)subscribe confirmations
        channel = message["channel"].decode()
        data: bytes = message["data"]
        if channel == self._keys.status_channel:
            event = notice_event(data)
            if event != "stream.disconnected":  # the gap is announced at reconnect
                await self._read_cache(await self._symbols_to_read(), f"notice:{event}")
            return
        price = parse_price(data)
        if price is None:
            self.malformed += 1
            return
        symbol = price.symbol
        current = self._latest.get(symbol)
        if current is None or not price.epoch or not current.epoch:
            pass  # first sight of the symbol (nothing cached), or not sequenced
        elif price.epoch != current.epoch:
            await self._read_cache([symbol], "epoch")
            return
        elif price.seq <= current.seq:
            self.duplicates_dropped += 1
            return
        elif price.seq != current.seq + 1:
            await self._read_cache([symbol], "seq_gap")
            return
        self._latest[symbol] = price
        self._pending.append(SubscriberUpdate("update", symbol, price))
