"""The SSE answer of ``/api/v1/stream/sse``: an ASGI response with its own loop.

Its own loop rather than a ``StreamingResponse`` so that a client the slow-client policy
condemned can be ended with a last ``error`` event (or cut off), and so that a keepalive
comment keeps proxies from closing an idle stream. The route is in ``routes/stream.py``;
the contract in docs/streaming.md.
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal

from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from apps.market_data_service.streaming import (
    ClientSession,
    StreamHub,
    abort_connection,
    encode_error,
)
from libs.tasks import cancel_and_wait

__all__ = ["EventStream", "writer_tasks"]

_KEEPALIVE: Final = 15.0  # seconds between SSE comments, so proxies keep the stream open


class EventStream(Response):
    """The SSE answer: its own ASGI loop, so a condemned client can be ended."""

    media_type = "text/event-stream"

    def __init__(self, hub: StreamHub, symbols: tuple[str, ...] | Literal["*"]) -> None:
        super().__init__()
        self._hub = hub
        self._symbols = symbols

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._hub.ensure_started()
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),  # no proxy buffering (nginx)
            ],
        })  # fmt: skip

        async def event(data: bytes) -> None:
            await send({"type": "http.response.body", "body": b"data: %s\n\n" % data,
                        "more_body": True})  # fmt: skip

        client = self._hub.connect(event, "sse")
        self._hub.subscribe(client, self._symbols)
        tasks = [
            asyncio.create_task(_until_disconnect(receive)),
            asyncio.create_task(client.condemned.wait()),
            asyncio.create_task(_keepalive(send)),
        ]
        try:
            await asyncio.wait([*tasks, *writer_tasks(client)], return_when=asyncio.FIRST_COMPLETED)
            if client.condemned.is_set():
                await client.stop()
                try:
                    async with asyncio.timeout(client.buffer.policy.close_grace):
                        await event(encode_error(f"closed: {client.buffer.reason}"))
                        await send({"type": "http.response.body", "body": b""})
                except (TimeoutError, OSError):
                    abort_connection(receive)
        finally:
            await cancel_and_wait(*tasks, quiet=True)
            await self._hub.disconnect(client)


def writer_tasks(client: ClientSession) -> list[asyncio.Task[None]]:
    """The client's writer task, to wait on with the others (none when it has none)."""
    return [] if client.writer is None else [client.writer]


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _keepalive(send: Send) -> None:
    while True:
        await asyncio.sleep(_KEEPALIVE)
        await send({"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True})
