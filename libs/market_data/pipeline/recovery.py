"""The price sink's way back from a Redis fault, until its writes land again.

Three faults, three ways back (docs/architecture.md, "Redis faults"): a lost connection
is reconnected with backoff, refused writes are retried, a Redis that stopped answering
is waited for. Each then rewrites the newest held price of every symbol, and once those
have landed the fault's episode closes with ``redis.recovered`` on
``market_data.status``, naming the symbols rewritten. The state itself changes only in
:class:`~libs.market_data.pipeline.condition.SinkCondition`; this module runs the tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Final

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.pipeline.book import UpdateBook
from libs.market_data.pipeline.condition import SinkCondition, SinkState
from libs.market_data.pipeline.notices import Notices
from libs.market_data.pipeline.packing import Batch
from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.topics import parse_topic
from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.writer import PipelinedWriter
from libs.tasks import cancel_and_wait

__all__ = ["SinkRecovery"]

# The sink's logger: these lines tell the sink's story.
logger = logging.getLogger("libs.market_data.pipeline.sink")

# 0.05 s doubling to 0.5 s, then every 0.5 s: back within a second of Redis.
_RETRY: Final = BackoffPolicy(base=0.05, maximum=0.5, jitter=0.0)


class SinkRecovery:
    """Enters the fault states, runs the way back, closes the episode."""

    def __init__(
        self,
        writer: PipelinedWriter[Batch],
        condition: SinkCondition,
        book: UpdateBook,
        notices: Notices,
        *,
        send: Callable[[Sequence[PriceUpdate]], None],
        publish: Callable[[str, Mapping[str, Any]], None],
    ) -> None:
        self._writer = writer
        self._condition = condition
        self._book = book
        self._notices = notices
        self._send = send  # the sink's own write of a batch of updates
        self._publish = publish  # the sink's notice, which also tells its listener
        self._task: asyncio.Task[None] | None = None  # retry refused or wait for replies
        self._reconnect_task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """Cancel whatever way back is in progress (the sink closes)."""
        self._cancel_task()
        task, self._reconnect_task = self._reconnect_task, None
        await cancel_and_wait(task)

    # -- the faults -------------------------------------------------------------------

    def lost(self, error: BaseException) -> None:
        """The connection is gone (or never came): reconnect in the background."""
        if self._condition.state is SinkState.CLOSED:
            return
        self._cancel_task()
        self._condition.enter(SinkState.DOWN, str(error))
        task = self._reconnect_task
        if task is None or task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect(), name="redis-reconnect")

    def refused(self, reason: str) -> None:
        """Redis answered writes with errors: retry the held ones until they land."""
        self._condition.enter(SinkState.REFUSED, reason)
        if self._task is None or self._task.done():
            self._spawn(self._retry_refused())

    def unresponsive(self) -> None:
        """Redis holds the connection but does not answer within the write timeout."""
        self._condition.enter(
            SinkState.UNRESPONSIVE, f"no reply within {self._condition.write_timeout:g}s"
        )
        self._spawn(self._await_replies())

    def recovered(self) -> None:
        """The rewrites landed: close the episode and say so, after the held notices."""
        episode = self._condition.close_episode()
        if episode is None:
            return
        self._notices.release()
        logger.info(
            "Redis writes land again after %s; rewrote %d symbols",
            episode.cause,
            len(episode.rewritten),
        )
        self._publish(
            "redis.recovered",
            {
                "cause": episode.cause.value,
                "outage_started_at": episode.started_at,
                "symbols_rewritten": sorted({parse_topic(t)[1] for t in episode.rewritten}),
            },
        )

    # -- the ways back ----------------------------------------------------------------

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        self._cancel_task()
        self._task = asyncio.create_task(job, name="redis-sink-recovery")

    def _cancel_task(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _rewrite_pending(self) -> None:
        """Send every held update again; the episode closes when they land."""
        updates = self._book.take_pending()
        if self._condition.episode is not None:
            self._condition.episode.rewritten.update(u[0] for u in updates)
        if updates:
            self._send(updates)
        elif self._condition.episode is not None and self._writer.in_flight == 0:
            self.recovered()  # nothing was held and nothing is waiting: done

    async def _reconnect(self) -> None:
        attempt = 0
        while self._condition.state is SinkState.DOWN:
            await asyncio.sleep(_RETRY.delay(attempt))
            attempt += 1
            try:
                await self._writer.connect()
            except RedisClientError as exc:
                self._condition.last_error = str(exc)
                continue
            logger.info("Redis is back; rewriting the newest price of %d symbols",
                        len(self._book.pending))  # fmt: skip
            self._condition.enter(SinkState.UP)  # the episode stays open until the rewrites land
            self._rewrite_pending()
            return

    async def _retry_refused(self) -> None:
        attempt = 0
        while self._condition.state is SinkState.REFUSED:
            await asyncio.sleep(_RETRY.delay(attempt))
            attempt += 1
            if self._condition.state is SinkState.REFUSED and self._writer.writable():
                self._rewrite_pending()

    async def _await_replies(self) -> None:
        try:
            await self._writer.wait_writable()
        except RedisClientError as exc:
            self.lost(exc)
            return
        logger.info("Redis answers again; writing the newest price of %d symbols",
                    len(self._book.pending))  # fmt: skip
        self._condition.enter(SinkState.UP)
        self._rewrite_pending()
