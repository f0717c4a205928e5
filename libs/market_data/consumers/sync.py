"""A blocking wrapper of :class:`PriceSubscriber`, for scripts and notebooks.

The async subscriber runs on an event loop in a daemon thread; updates reach the caller
through a queue::

    with SyncPriceSubscriber("redis://localhost:6379", symbols=["AAPL"]) as sub:
        for update in sub:
            print(update.kind, update.symbol, update.price)
        sub.latest("AAPL")
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Literal, Self

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.consumers.records import LivePrice, SubscriberUpdate
from libs.market_data.consumers.subscriber import DEFAULT_SUBSCRIBER_BACKOFF, PriceSubscriber
from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.redis_client import RedisConnectionParams
from libs.tasks import cancel_and_wait

__all__ = ["SyncPriceSubscriber"]

_END = object()


class SyncPriceSubscriber:
    """``PriceSubscriber`` for code without an event loop."""

    def __init__(
        self,
        redis_url_or_params: str | RedisConnectionParams,
        symbols: Iterable[str] | Literal["*"] = "*",
        *,
        keys: KeySpace = DEFAULT_KEYS,
        backoff: BackoffPolicy = DEFAULT_SUBSCRIBER_BACKOFF,
    ) -> None:
        self._subscriber = PriceSubscriber(redis_url_or_params, symbols, keys=keys, backoff=backoff)
        self._queue: queue.Queue[object] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float | None = 30.0) -> None:
        """Connect and take the snapshot (raises what connecting raised)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._subscriber.connect(), self._loop).result(timeout)
        asyncio.run_coroutine_threadsafe(self._spawn(), self._loop).result(timeout)

    async def _spawn(self) -> None:
        self._task = asyncio.create_task(self._pump())

    async def _shutdown(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self._subscriber.close()

    async def _pump(self) -> None:
        try:
            async for update in self._subscriber:
                self._queue.put(update)
        except BaseException as exc:  # handed to the reader, never lost in the thread
            self.error = exc
        finally:
            self._queue.put(_END)

    def get(self, timeout: float | None = None) -> SubscriberUpdate | None:
        """The next update; ``None`` after ``timeout`` seconds or once closed."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._queue.put(_END)
            if self.error is not None and not isinstance(self.error, asyncio.CancelledError):
                raise self.error
            return None
        assert isinstance(item, SubscriberUpdate)
        return item

    def __iter__(self) -> Iterator[SubscriberUpdate]:
        while (update := self.get()) is not None:
            yield update

    def latest(self, symbol: str) -> LivePrice | None:
        """The newest known price of ``symbol``, or ``None``."""
        return self._subscriber.latest(symbol)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the subscriber and its thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
        self._queue.put(_END)
