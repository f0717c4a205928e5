"""Cancel tasks and wait until they have ended, even when a cancellation is lost.

On Python 3.11, ``asyncio.wait_for`` whose awaitable completes in the same loop turn as
a cancellation of the waiting task returns the result (or raises the awaitable's error)
and drops the cancellation (fixed in 3.12). redis-py calls it for every command it
sends, and a connection attempt that fails at once (a dead port) completes at once. A
task that loops (reconnect, watch a topology) then carries on as if nothing happened,
and the usual ``task.cancel(); await task`` waits for it forever: seen as a shutdown
that hung after a Redis Cluster failover under load. :func:`cancel_and_wait` cancels
again until the task has ended (after a grace second for the task's own clean-up).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

__all__ = ["cancel_and_wait"]

logger = logging.getLogger(__name__)

# A cancelled task may await its own clean-up (closing a socket): it gets this long
# before it is cancelled again, then every _AGAIN_AFTER seconds until it has ended.
_GRACE: Final = 1.0
_AGAIN_AFTER: Final = 0.1


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None, quiet: bool = False) -> None:
    """Cancel ``tasks`` (None and the current task are skipped) and return once all ended.

    A task's own failure is logged (at debug level with ``quiet``, for tasks whose
    failures are expected: a client's socket closed), never raised: stopping goes on.
    Cancelling the task that calls this still cancels it (the wait is not shielded).
    """
    current = asyncio.current_task()
    running = {t for t in tasks if t is not None and t is not current}
    wait = _GRACE
    while pending := {t for t in running if not t.done()}:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=wait)
        wait = _AGAIN_AFTER
    for task in running:
        if not task.cancelled() and (error := task.exception()) is not None:
            level = logging.DEBUG if quiet else logging.ERROR
            logger.log(level, "background task %s had failed: %r", _name(task), error)


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
