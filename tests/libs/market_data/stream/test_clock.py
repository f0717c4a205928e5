"""The data clock: its adaptive limit (pure) and its watch (tiny real sleeps)."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from libs.market_data.stream.clock import (
    MAX_STALL_TIMEOUT,
    DataClock,
    StallDetected,
    backed_off,
)


async def stall(clock: DataClock, last_data_at: float | None = None) -> StallDetected:
    return await asyncio.wait_for(clock.watch(lambda: last_data_at, lambda: True), 5)


@pytest.mark.parametrize("off", [None, 0, 0.0])
def test_off_has_no_limit(off: float | None) -> None:
    clock = DataClock(off)
    assert not clock.enabled
    assert clock.limit(None) is None


async def test_an_off_clock_refuses_to_watch() -> None:
    with pytest.raises(RuntimeError):
        await DataClock(None).watch(lambda: None, lambda: True)


async def test_silence_while_subscribed_is_a_stall_and_doubles_the_next_limit() -> None:
    clock = DataClock(0.04)
    started = time.monotonic()
    first = await stall(clock)
    assert time.monotonic() - started >= 0.04
    assert first.silent >= 0.04
    assert first.next_limit == pytest.approx(0.08)
    assert clock.stalls_detected == 1
    assert clock.limit(None) == pytest.approx(0.08)  # no data since: still backed off
    second = await stall(clock)
    assert second.next_limit == pytest.approx(0.16)
    assert clock.limit(None) == pytest.approx(0.16)


async def test_data_after_a_stall_brings_the_base_limit_back() -> None:
    clock = DataClock(0.04)
    await stall(clock, last_data_at=100.0)
    assert clock.limit(100.0) == pytest.approx(0.08)  # the same last frame: backed off
    assert clock.limit(101.0) == pytest.approx(0.04)  # a newer frame: base again
    assert (await stall(clock, last_data_at=101.0)).next_limit == pytest.approx(0.08)


def test_the_cap_stops_the_doubling_but_never_lowers_a_bigger_base() -> None:
    assert backed_off(60.0) == 120.0
    assert backed_off(MAX_STALL_TIMEOUT * 0.75) == MAX_STALL_TIMEOUT
    assert backed_off(MAX_STALL_TIMEOUT) == MAX_STALL_TIMEOUT
    assert backed_off(MAX_STALL_TIMEOUT * 2) == MAX_STALL_TIMEOUT * 2


async def test_nothing_subscribed_is_never_a_stall() -> None:
    clock = DataClock(0.02)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(clock.watch(lambda: None, lambda: False), 0.2)
    assert clock.stalls_detected == 0


async def test_flowing_data_is_never_a_stall() -> None:
    clock = DataClock(0.02)
    frames = itertools.count()  # a new frame every time the clock looks
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(clock.watch(lambda: float(next(frames)), lambda: True), 0.2)
    assert clock.stalls_detected == 0
