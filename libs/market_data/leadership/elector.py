"""``LeaderElector``: the thin asyncio shell around the lease (docs/leadership.md).

A loop asks the :class:`~libs.market_data.leadership.lease.Lease` what to do next,
does it against Redis (:class:`~libs.market_data.leadership.redis_lease.RedisLease`),
and feeds the answer back. On becoming leader it first fences off older epochs (the
stamp is already raised by the acquisition; then ``CLIENT KILL``), arms the writers'
:class:`~libs.market_data.leadership.fencing.EpochGuard`, and only then calls
``on_elected``, which starts the writing. On stepping down it disarms the guard first,
then calls ``on_demoted``. A standby is woken at once by :meth:`release_seen` (the
``leader.released`` notice), by :meth:`fenced` a leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from libs.market_data.keys import KeySpace
from libs.market_data.leadership.fencing import EpochGuard
from libs.market_data.leadership.lease import (
    Acquired,
    Answer,
    Change,
    Fenced,
    HeldBy,
    Lease,
    Lost,
    Released,
    ReleaseSeen,
    Renewed,
    Role,
    Step,
    Tick,
    Unreachable,
)
from libs.market_data.leadership.redis_lease import RedisLease
from libs.redis_client import RedisClient, RedisClientError
from libs.tasks import cancel_and_wait

__all__ = ["LeaderElector"]

logger = logging.getLogger(__name__)

OnChange = Callable[[Change], Awaitable[None]]


class LeaderElector:
    """Runs one instance's part in the election until :meth:`stop`."""

    def __init__(
        self,
        client: RedisClient,
        keys: KeySpace,
        instance: str,
        ttl: float,
        *,
        on_elected: OnChange,
        on_demoted: OnChange,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = Lease(instance, ttl)
        # On a cluster the stamp lives on the lease's node: the guard reads it there.
        reader = client if keys.cluster else None
        self.guard = EpochGuard(keys, instance, on_fenced=self.fenced, reader=reader)
        self._redis = RedisLease(client, keys, instance, ttl)
        self._on_elected = on_elected
        self._on_demoted = on_demoted
        self._clock = clock
        self._wake = asyncio.Event()
        self._pending: list[Answer] = []  # fed from outside (fenced, release seen)
        self._task: asyncio.Task[None] | None = None
        self._changing = asyncio.Lock()
        self.acquisitions = 0  # times this instance became leader
        self.fenced_connections = 0  # older-epoch connections killed at acquisitions
        # The last acquisition found no epoch stamp: a first start, or Redis lost its data
        # (then the saved subscriptions are gone too: keep what this instance holds).
        self.found_redis_empty = False

    @property
    def role(self) -> Role:
        return self.lease.role

    def is_leader(self) -> bool:
        """Leader, with a lease not run out by our own clock."""
        return self.lease.valid(self._clock())

    # -- inputs from outside ------------------------------------------------------------

    def fenced(self) -> None:
        """A writer found a newer epoch: step down (soon, from the loop)."""
        self._feed(Fenced())

    def release_seen(self) -> None:
        """The leader released the lease: a standby tries at once."""
        self._feed(ReleaseSeen())

    def _feed(self, answer: Answer) -> None:
        self._pending.append(answer)
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="leader-election")

    async def stop(self, details: dict[str, object] | None = None) -> None:
        """Stop; a leader steps down (``on_demoted``: stop writing, flush) and then releases
        the lease, announcing it so a standby takes over at once."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        async with self._changing:
            was_leader = self.lease.role is Role.LEADER
            await self._apply(self.lease.handle(Released(), self._clock()))
            if was_leader:
                try:
                    await self._redis.release(details or {})
                except RedisClientError as exc:
                    logger.warning("could not release the lease (it runs out by itself): %s", exc)

    # -- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            step, wait = self.lease.next_step(self._clock())
            if wait > 0 and not self._pending:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
            async with self._changing:
                await self._drain()
                step, wait = self.lease.next_step(self._clock())
                if wait > 0:
                    continue
                if step is Step.ACQUIRE:
                    await self._acquire()
                elif step is Step.RENEW:
                    await self._renew()
                await self._apply(self.lease.handle(Tick(), self._clock()))

    async def _drain(self) -> None:
        pending, self._pending = self._pending, []
        for answer in pending:
            await self._apply(self.lease.handle(answer, self._clock()))
        await self._apply(self.lease.handle(Tick(), self._clock()))

    async def _acquire(self) -> None:
        sent = self._clock()
        try:
            result = await self._redis.acquire(self.lease.known_epoch)
        except RedisClientError as exc:
            await self._apply(self.lease.handle(Unreachable(str(exc)), self._clock()))
            return
        if not result.acquired:
            if result.holder is not None:
                held = HeldBy(result.holder, result.remaining)
                await self._apply(self.lease.handle(held, self._clock()))
            return
        epoch = self._redis.epoch
        assert epoch is not None  # acquired: our value is set
        try:
            # The stamp is raised; kill the older epochs' writers before anything is written.
            self.fenced_connections += await self._redis.fence_older(epoch)
        except RedisClientError as exc:
            # Unfenced, we must not write: give the lease back and try again later.
            logger.warning("could not fence older writers (%s); releasing the lease", exc)
            with contextlib.suppress(RedisClientError):
                await self._redis.release({"reason": "fencing failed"})
            self._redis.forget()
            await self._apply(self.lease.handle(Unreachable(str(exc)), self._clock()))
            return
        self.guard.lead(epoch, self._redis.token)
        self.found_redis_empty = result.fresh
        self.acquisitions += 1
        await self._apply(self.lease.handle(Acquired(epoch, sent), self._clock()))

    async def _renew(self) -> None:
        sent = self._clock()
        try:
            renewed = await self._redis.renew()
        except RedisClientError as exc:
            await self._apply(self.lease.handle(Unreachable(str(exc)), self._clock()))
            return
        answer: Answer = Renewed(sent) if renewed else Lost()
        await self._apply(self.lease.handle(answer, self._clock()))

    async def _apply(self, change: Change | None) -> None:
        if change is None:
            return
        logger.warning(
            "leadership: %s -> %s (%s), epoch %s",
            change.old.value,
            change.new.value,
            change.reason,
            change.epoch,
        )
        if change.new is Role.LEADER:
            try:
                await self._on_elected(change)
            except Exception:
                logger.exception("starting as leader failed; stepping down")
                self._feed(Lost())
            return
        # Disarm first: a writer that reconnects from now on is refused.
        self.guard.step_down()
        try:
            await self._on_demoted(change)
        except Exception:
            logger.exception("stepping down failed")
