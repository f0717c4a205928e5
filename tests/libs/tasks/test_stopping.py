"""cancel_and_wait: tasks end, even one that loses a cancellation (Python 3.11)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import pytest

from libs.tasks import cancel_and_wait


async def test_a_task_that_loses_a_cancellation_is_still_stopped() -> None:
    loop = asyncio.get_running_loop()
    attempts: list[asyncio.Future[None]] = []

    async def reconnecting() -> None:
        while True:  # as a reconnect loop does: a failed attempt is tried again
            attempt: asyncio.Future[None] = loop.create_future()
            attempts.append(attempt)
            with contextlib.suppress(OSError):
                await asyncio.wait_for(attempt, 10)

    task = asyncio.create_task(reconnecting())
    await asyncio.sleep(0)
    attempts[-1].set_exception(OSError("refused"))  # fails in the turn it is cancelled
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert task.cancelled()
    if sys.version_info < (3, 12):  # what the helper is for: the first cancel was lost
        assert len(attempts) >= 2


async def test_a_failed_task_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def failing() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(failing(), name="the-failing-one")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="libs.tasks.stopping"):
        await cancel_and_wait(task, None)
    assert "the-failing-one had failed: ValueError('boom')" in caplog.text


async def test_many_tasks_end_together_and_the_caller_itself_is_skipped() -> None:
    tasks = [asyncio.create_task(asyncio.sleep(30)) for _ in range(5)]
    await cancel_and_wait(*tasks, asyncio.current_task())
    assert all(t.cancelled() for t in tasks)


async def test_cancelling_the_caller_still_cancels_it() -> None:
    giving_up = asyncio.Event()

    async def stubborn() -> None:
        while not giving_up.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(30)

    inner = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    outer = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0.2)  # it keeps cancelling a task that never ends
    assert not outer.done()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert not inner.done()  # a task that swallows every cancellation is not stopped
    giving_up.set()
    await cancel_and_wait(inner)
    assert inner.done()


async def test_a_task_finishes_a_short_clean_up_before_it_is_cancelled_again() -> None:
    cleaned = asyncio.Event()

    async def closing_a_socket() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.3)  # its own clean-up, awaited
            cleaned.set()

    task = asyncio.create_task(closing_a_socket())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert cleaned.is_set()
