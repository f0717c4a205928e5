"""A real WebSocket client of ``/api/v1/stream`` for the tests: collects every message.

It keeps what a careful consumer keeps: the latest price per symbol (from snapshots and
updates), every resync, error, coalesced notice, and how the socket closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import Counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import eventually

__all__ = ["StreamClient", "ws_url"]


def ws_url(http_url: str, query: str = "") -> str:
    return http_url.replace("http://", "ws://") + "/api/v1/stream" + (f"?{query}" if query else "")


class StreamClient:
    """Reads the stream in a task (unless ``reading=False``: a client that never reads)."""

    def __init__(self, ws: ClientConnection, *, reading: bool = True) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.frames = 0
        self.counts: Counter[str] = Counter()  # messages by type, as they arrive
        self.latest: dict[str, dict[str, Any] | None] = {}
        self.close_code: int | None = None
        self.close_reason = ""
        self.task = asyncio.create_task(self._run()) if reading else None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        reading: bool = True,
        small_buffers: bool = False,
    ) -> StreamClient:
        sock = None
        if small_buffers:
            # A stalled client on a slow link: the kernel holds little for it.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            host, port = url.split("//")[1].split("/", maxsplit=1)[0].split(":")
            sock.connect((host, int(port)))
        ws = await connect(
            url, additional_headers=headers, sock=sock, max_queue=4 if small_buffers else 1024,
            open_timeout=10, compression=None if small_buffers else "deflate",
        )  # fmt: skip
        return cls(ws, reading=reading)

    def start_reading(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for raw in self.ws:
                self.frames += 1
                decoded = json.loads(raw)
                for message in decoded if isinstance(decoded, list) else [decoded]:
                    self._take(message)
        except ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason or ""
            else:
                self.close_code = -1

    def _take(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        kind = message["type"]
        self.counts[kind] += 1
        if kind == "snapshot":
            self.latest[message["symbol"]] = message["data"]
        elif kind == "price":
            self.latest[message["data"]["symbol"]] = message["data"]

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def subscribe(self, *symbols: str) -> None:
        await self.send({"action": "subscribe", "symbols": list(symbols)})

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def prices(self, symbol: str) -> list[dict[str, Any]]:
        return [m["data"] for m in self.of("price") if m["data"]["symbol"] == symbol]

    async def wait_for(
        self, kind: str, count: int = 1, timeout: float = 10
    ) -> list[dict[str, Any]]:
        await eventually(lambda: len(self.of(kind)) >= count, timeout, f"{count} {kind} message(s)")
        return self.of(kind)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 5)
