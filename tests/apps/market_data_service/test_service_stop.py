"""Shutdown steps are bounded: one that hangs is named in the log and the rest still run."""

from __future__ import annotations

import asyncio
import logging

import pytest

from apps.market_data_service.service import _bounded


async def test_a_hung_step_is_abandoned_and_named(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def finishes() -> None:
        ran.append("next")

    with caplog.at_level(logging.ERROR, logger="apps.market_data_service.service"):
        await _bounded("stream hub", hangs(), budget=0.05)
        await _bounded("redis client", finishes(), budget=5)
    assert ran == ["next"]
    assert [r.getMessage() for r in caplog.records] == [
        "shutdown step 'stream hub' did not finish within 0.05s; going on"
    ]


async def test_a_step_that_finishes_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async def quick() -> None:
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="apps.market_data_service.service"):
        await _bounded("duties", quick(), budget=5)
    assert caplog.records == []
