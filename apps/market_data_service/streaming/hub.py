"""``StreamHub``: one Redis reader per process, fanned out to every stream client.

The reader is a :class:`~libs.market_data.consumers.PriceSubscriber` on every symbol of
the namespace (``"*"``: one pattern subscription, whatever the clients want), so the
stream shows exactly what a Redis consumer sees, gap detection and resyncs included.
Each update is encoded once; the same bytes go to every client that wants the symbol.
The hub holds the newest price per symbol it has passed on: a client's snapshot comes
from there, so between snapshot and updates there is no hole and no duplicate.

Started by the first client (``ensure_started``), stopped with the service. A watchdog
applies the slow-client policy (docs/streaming.md) four times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from apps.market_data_service.streaming.client import CLOSE_CAUSES, ClientPolicy
from apps.market_data_service.streaming.messages import (
    encode_price,
    encode_resync,
    encode_snapshot,
    encode_subscriptions,
)
from apps.market_data_service.streaming.session import ClientSession, Sender, Transport
from libs.market_data.backoff import BackoffPolicy
from libs.market_data.consumers import (
    DEFAULT_SUBSCRIBER_BACKOFF,
    LivePrice,
    PriceSubscriber,
    SubscriberUpdate,
)
from libs.market_data.exceptions import SubscriberError
from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.redis_client import RedisConnectionParams
from libs.redis_client.cluster import ClusterParams
from libs.tasks import cancel_and_wait

__all__ = ["HubState", "HubStats", "StreamHub"]

HubState = Literal["idle", "connecting", "streaming"]

logger = logging.getLogger(__name__)

_READY_WAIT: Final = 3.0  # seconds a first client waits for the hub's first snapshot
_WATCHDOG: Final = 0.25  # seconds between slow-client checks
_RESTART_DELAY: Final = 1.0  # after the subscriber gave up, before a new one


@dataclass(frozen=True, slots=True)
class HubStats:
    """The hub at a moment, for /metrics and /health (totals since the service started).

    ``state``: ``idle`` (no client yet), ``connecting`` (its Redis reader has no snapshot
    yet, or lost Redis and starts over), ``streaming``.
    """

    state: HubState
    clients: dict[str, int]  # by transport: ws, sse
    updates: int  # price updates read from Redis and fanned out
    resyncs: int
    messages_sent: int  # messages written to clients (several per frame)
    frames_sent: int
    coalesced: int  # pending updates replaced by newer ones (slow clients)
    closed_slow: dict[str, int] = field(default_factory=dict)  # by CLOSE_CAUSES


class StreamHub:
    """The shared reader and the set of clients (see the module doc)."""

    def __init__(
        self,
        params: RedisConnectionParams | ClusterParams,  # a cluster: docs/cluster.md
        keys: KeySpace = DEFAULT_KEYS,
        *,
        policy: ClientPolicy | None = None,
        backoff: BackoffPolicy = DEFAULT_SUBSCRIBER_BACKOFF,
    ) -> None:
        self._params = params
        self._keys = keys
        self.policy = policy or ClientPolicy()
        self._backoff = backoff
        self._latest: dict[str, LivePrice] = {}
        self._clients: set[ClientSession] = set()
        self._by_symbol: dict[str, set[ClientSession]] = {}
        self._everything: set[ClientSession] = set()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._names = itertools.count(1)
        # Counters (tests, the bench, /metrics).
        self.updates = 0
        self.resyncs = 0
        self.closed_slow = 0
        self._closed_causes: Counter[str] = Counter()
        # The counters of clients gone, so totals survive disconnects.
        self._gone_messages = 0
        self._gone_frames = 0
        self._gone_coalesced = 0
        self._streaming = False  # the reader has its snapshot and reads updates

    def stats(self) -> HubStats:
        """Counters and state, read at scrape time (nothing on the hot path)."""
        clients = {"ws": 0, "sse": 0}
        messages, frames, coalesced = self._gone_messages, self._gone_frames, self._gone_coalesced
        for client in self._clients:
            clients[client.transport] += 1
            buffer = client.buffer
            messages += buffer.messages_sent
            frames += buffer.frames_sent
            coalesced += buffer.replaced_total
        state: HubState = (
            "idle" if not self._tasks else "streaming" if self._streaming else "connecting"
        )
        closed = {cause: self._closed_causes[cause] for cause in CLOSE_CAUSES}
        return HubStats(
            state, clients, self.updates, self.resyncs, messages, frames, coalesced, closed
        )

    @property
    def clients(self) -> int:
        return len(self._clients)

    def sessions(self) -> list[ClientSession]:
        """The connected clients (for tests and diagnostics)."""
        return list(self._clients)

    # -- lifecycle -----------------------------------------------------------------------------

    async def ensure_started(self) -> None:
        """Start the reader if needed and give it a moment for its first snapshot."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._read(), name="stream-hub-reader"),
                asyncio.create_task(self._watch(), name="stream-hub-watchdog"),
            ]
        with contextlib.suppress(TimeoutError):
            # Redis down: clients get null snapshots now, real ones once it answers.
            async with asyncio.timeout(_READY_WAIT):
                await self._ready.wait()

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks)
        for client in list(self._clients):
            await client.stop()

    async def _read(self) -> None:
        while True:
            subscriber = PriceSubscriber(self._params, "*", keys=self._keys, backoff=self._backoff)
            try:
                await subscriber.connect()
                while subscriber.queued:  # the snapshot connect() took
                    self._dispatch(await anext(subscriber))
                self._ready.set()
                self._streaming = True
                async for update in subscriber:
                    self._dispatch(update)
            except SubscriberError as exc:
                logger.error("stream hub: %s; starting over", exc)
            finally:
                self._streaming = False
                await subscriber.close()
            await asyncio.sleep(_RESTART_DELAY)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_WATCHDOG)
            now = loop.time()
            for client in list(self._clients):
                client.check(now)

    # -- clients -----------------------------------------------------------------------------------

    def connect(self, send: Sender, transport: Transport = "ws") -> ClientSession:
        """A new client (no symbols yet); its writer runs until :meth:`disconnect`."""
        client = ClientSession(send, self.policy, f"c{next(self._names)}", transport)
        self._clients.add(client)
        client.start()
        return client

    async def disconnect(self, client: ClientSession) -> None:
        if client not in self._clients:
            await client.stop()
            return  # gone already: counted once
        self._clients.discard(client)
        self._everything.discard(client)
        for symbol in client.symbols:
            self._leave(client, symbol)
        if client.condemned.is_set():
            self.closed_slow += 1
            self._closed_causes[client.buffer.cause] += 1
        await client.stop()
        buffer = client.buffer  # its totals stay in the hub's
        self._gone_messages += buffer.messages_sent
        self._gone_frames += buffer.frames_sent
        self._gone_coalesced += buffer.replaced_total

    def subscribe(self, client: ClientSession, symbols: Iterable[str] | Literal["*"]) -> None:
        """Add symbols (or ``"*"``); one snapshot each, then the subscription list."""
        if symbols == "*":
            # Named symbols are covered by "*" now: one way in, never a duplicate.
            for symbol in client.symbols:
                self._leave(client, symbol)
            client.symbols.clear()
            new = [] if client.everything else sorted(self._latest)
            client.everything = True
            self._everything.add(client)
        else:
            new = [s for s in symbols if not client.wants(s)]
            for symbol in new:
                client.symbols.add(symbol)
                self._by_symbol.setdefault(symbol, set()).add(client)
        for symbol in new:
            client.push_control(encode_snapshot(symbol, self._latest.get(symbol)))
        client.push_control(encode_subscriptions(self._listed(client)))

    def unsubscribe(self, client: ClientSession, symbols: Iterable[str] | Literal["*"]) -> None:
        """Remove symbols (``"*"``: all of them, named ones too), then the subscription
        list. Under ``"*"`` a named symbol stays until ``"*"`` goes."""
        if symbols == "*":
            client.everything = False
            self._everything.discard(client)
            symbols = list(client.symbols)
        for symbol in symbols:
            if symbol in client.symbols:
                client.symbols.discard(symbol)
                self._leave(client, symbol)
        client.push_control(encode_subscriptions(self._listed(client)))

    @staticmethod
    def _listed(client: ClientSession) -> list[str]:
        return ["*"] if client.everything else sorted(client.symbols)

    def _leave(self, client: ClientSession, symbol: str) -> None:
        holders = self._by_symbol.get(symbol)
        if holders is not None:
            holders.discard(client)
            if not holders:
                del self._by_symbol[symbol]

    # -- the fan-out ----------------------------------------------------------------------------

    def _dispatch(self, update: SubscriberUpdate) -> None:
        if update.kind == "resync":
            self._resync(update.symbols, update.reason)
            return
        symbol, price = update.symbol, update.price
        if symbol is None or price is None:
            return
        self._latest[symbol] = price
        holders = self._by_symbol.get(symbol)
        if not holders and not self._everything:
            return
        if update.kind == "update":
            self.updates += 1
            payload = encode_price(price)
            for client in holders or ():
                client.push_price(symbol, payload)
            for client in self._everything:
                client.push_price(symbol, payload)
        else:
            payload = encode_snapshot(symbol, price)
            for client in holders or ():
                client.push_control(payload)
            for client in self._everything:
                client.push_control(payload)

    def _resync(self, symbols: tuple[str, ...], reason: str) -> None:
        self.resyncs += 1
        for client in self._clients:
            affected = [s for s in symbols if client.wants(s)]
            if affected:
                client.push_control(encode_resync(affected, reason))
