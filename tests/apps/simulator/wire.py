"""Helpers for socket tests of the simulator: subscribe, collect frames, barrier on a marker."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

from apps.simulator import AlpacaSimulator
from tests.fixtures.simulator import decode_frame, recv_frame

RFC3339_NS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
MARKER = '[{"T":"marker"}]'


async def subscribe(ws: ClientConnection, *symbols: str, action: str = "subscribe") -> None:
    await ws.send(json.dumps({"action": action, "quotes": list(symbols)}))
    # Data may already be flowing: skip frames until the ack.
    while (await recv_frame(ws))[0]["T"] != "subscription":
        pass


async def collect(ws: ClientConnection, seconds: float) -> list[list[dict[str, Any]]]:
    """Every frame received within ``seconds``."""
    frames: list[list[dict[str, Any]]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                frames.append(decode_frame(await ws.recv()))
    except TimeoutError:
        pass
    return frames


Frames = list[list[dict[str, Any]]]


async def collect_until(
    ws: ClientConnection, done: Callable[[Frames], bool], within: float = 10.0
) -> Frames:
    """Every frame received until ``done(frames)`` holds: a count, not a time window, so a
    loaded machine only makes it slower. Fails after ``within`` seconds."""
    frames: Frames = []
    try:
        async with asyncio.timeout(within):
            while not done(frames):
                frames.append(decode_frame(await ws.recv()))
    except TimeoutError:
        raise AssertionError(
            f"after {within}s only {len(frames)} frames ({len(quotes_of(frames))} quotes)"
        ) from None
    return frames


def quotes_at_least(count: int) -> Callable[[Frames], bool]:
    """For :func:`collect_until`: at least ``count`` quotes received."""
    return lambda frames: len(quotes_of(frames)) >= count


async def drain_until_marker(sim: AlpacaSimulator, ws: ClientConnection) -> None:
    """Use an injected frame as a barrier: everything sent before it has been read after."""
    await sim.send_raw(MARKER)
    async with asyncio.timeout(2):
        while await ws.recv() != MARKER:
            pass


def quotes_of(frames: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [message for frame in frames for message in frame]
